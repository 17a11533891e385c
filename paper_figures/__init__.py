"""paper_figures: every table and figure of the paper, rebuilt by one command.

    python -m paper_figures.make_all --runs RUNS_DIR --out OUT_DIR [--only NAME ...]

rebuilds everything from the run directories under ``RUNS_DIR`` (found recursively) and
lists what it could not build and why, also in ``OUT_DIR/INDEX.md`` with every caption.
The artefacts are the entries of :data:`paper_figures.make_all.ARTEFACTS`:

    table_benchmarks            table_<suite>.md/.tex: rows method × iteration, the suite's benchmarks, Avg., Δ
    table_reference             table_reference_<suite>.md/.tex: averages next to published numbers
    table_testbed               table_testbed.md/.tex: distances to the testbed target
    fig_gradient_concentration  ESS/n of IRIS's weights vs α: exp(−τ²σ²) against logged values
    fig_weight_profiles         per-sample gradient weight vs reward (computed with iris.losses: torch)
    fig_alpha_trace             adaptive α against the measured gaps, per step and per iteration
    fig_training_curves         loss, −L_α, log-likelihoods, reward margin over training
    fig_testbed                 forward KL, reverse KL, TV to the testbed target vs iteration
    fig_data_efficiency         score vs number of annotated samples, SFT vs self-play

Each is also an attribute of this package with ``build(records, out_dir)`` and
``main(argv)`` (``paper_figures.fig_testbed.main(["--runs", …, "--out", …])``). Only the
weighting profiles (:mod:`paper_figures.weight_profiles`) import torch.
"""


def __getattr__(name: str):
    from .make_all import ARTEFACTS

    if name in ARTEFACTS:
        return ARTEFACTS[name]
    raise AttributeError(f"module 'paper_figures' has no attribute {name!r}")
