"""analysis: run directories → one tidy pandas DataFrame → the paper's tables and figures (no torch).

Modules, one concern each:
    analysis.records        discover and load run directories (and plain TRL output folders)
                            into one tidy DataFrame, :class:`Records`
    analysis.tables         the paper's tables (Markdown, LaTeX), mean ± std over seeds
    analysis.reference      published numbers as data (``reference_numbers.yaml``, sources cited)
    analysis.concentration  ESS/n of IRIS's weights: exp(−τ²σ²) and the logged values
    analysis.plotting       the style file, method colours, seed bands, PDF + PNG output
    analysis.figures        the figures, each a function of records returning the written paths

Typical use::

    from analysis import load_runs, benchmark_table, training_curves
    records = load_runs("runs/")  # a pandas.DataFrame: one row per run × iteration × step/evaluation × metric
    print(benchmark_table(records, "iris10").to_markdown())
    training_curves(records, "figures/")

``python -m paper_figures.make_all --runs DIR --out DIR`` rebuilds everything.
This package never imports torch or transformers (a test checks it).
"""

from .concentration import ess_fraction_theory, measured_concentration, tilt
from .figures import (
    CAPTIONS,
    ProfileCurve,
    WeightProfiles,
    alpha_trace,
    data_efficiency,
    gradient_concentration,
    testbed_distance,
    training_curves,
    weight_profiles,
)
from .records import (
    MissingValueError,
    MissingValueWarning,
    NoData,
    Records,
    RunInfo,
    discover_runs,
    load_runs,
    method_label,
)
from .reference import Reference, load_reference
from .tables import Table, benchmark_table, reference_table, seed_stat

__all__ = [
    "CAPTIONS", "MissingValueError", "MissingValueWarning", "NoData", "ProfileCurve",
    "Records", "Reference", "RunInfo", "Table", "WeightProfiles", "alpha_trace",
    "benchmark_table", "data_efficiency", "discover_runs", "ess_fraction_theory",
    "gradient_concentration", "load_reference", "load_runs", "measured_concentration",
    "method_label", "reference_table", "seed_stat", "testbed_distance", "tilt",
    "training_curves", "weight_profiles"
]  # fmt: skip
