"""iris: self-play fine-tuning of language models with Rényi-divergence objectives.

Modules, one concern each:
    iris.losses       pure loss functions (IRIS, SPIN, SPACE, SPIF, T-SPIN) and tilted risk
    iris.reference    50-digit mpmath reference implementations of the same formulas
    iris.accuracy     the measured accuracy of iris.losses against iris.reference
    iris.tiny_models  tiny random-initialised Llama models and word-level tokenizers
    iris.cli          the ``iris`` console script
"""

__version__ = "0.1.0"
