"""Self-play losses: pure functions of per-sequence log-probability tensors (torch only).

Every loss takes tensors first and keyword-only hyper-parameters, and returns a
:class:`LossOutput` holding the loss, the per-sample gradient weights of the annotated
("real") and synthetic ("generated") responses, and detached diagnostics. For the
log-ratio losses the weights obey one contract,
``real_weights = −(1/β) ∂loss/∂real_logratios`` and
``generated_weights = (1/β) ∂loss/∂generated_logratios``: each method is described by how
it weights each sample's gradient, the unifying view of the IRIS paper.

``*_logratios`` are ``log p_θ(y|x) − log p_θt(y|x)`` summed over response tokens
(θt: the previous iterate), unscaled; ``*_logps`` are policy log-probs (reference-free).
"""

from collections.abc import Callable

from ._iris import iris_loss, iris_normalizers
from ._logistic import spin_loss, tspin_loss
from ._space import space_loss
from ._spif import spif_loss
from ._tilted import combine_tilted_risks, effective_sample_fraction, tilt_weights, tilted_risk
from ._types import LossOutput, TiltNormalizer

LOSSES: dict[str, Callable[..., LossOutput]] = {
    "iris": iris_loss,
    "spin": spin_loss,
    "space": space_loss,
    "spif": spif_loss,
    "tspin": tspin_loss,
}

__all__ = [
    "LOSSES",
    "LossOutput",
    "TiltNormalizer",
    "combine_tilted_risks",
    "effective_sample_fraction",
    "iris_loss",
    "iris_normalizers",
    "space_loss",
    "spif_loss",
    "spin_loss",
    "tilt_weights",
    "tilted_risk",
    "tspin_loss",
]
