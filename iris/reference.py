"""High-precision reference implementations (mpmath, 50 digits) of the loss formulas.

Written the naive way, straight from objective.md, with enough working precision that the
naive form is exact: the yardstick for the stable float32/float64 implementations.
"""

from __future__ import annotations

from collections.abc import Sequence

import mpmath

mpmath.mp.dps = 50


def _mp(values: Sequence[float]) -> list[mpmath.mpf]:
    return [mpmath.mpf(float(v)) for v in values]


def tilted_risk(losses: Sequence[float], tilt: float) -> mpmath.mpf:
    """(1/τ) log mean exp(τ ℓ), mean at τ = 0."""
    values = _mp(losses)
    tau = mpmath.mpf(float(tilt))
    if tau == 0:
        return mpmath.fsum(values) / len(values)
    # The naive form cancels about log10(1/|τ ℓ|) digits: work with that many more.
    scale = max(abs(tau * v) for v in values)
    extra = 0 if scale == 0 or scale >= 1 else int(-mpmath.log10(scale)) + 1
    with mpmath.workdps(mpmath.mp.dps + extra):
        mean = mpmath.fsum(mpmath.exp(tau * v) for v in values) / len(values)
        return +(mpmath.log(mean) / tau)


def tilt_weights(losses: Sequence[float], tilt: float) -> list[mpmath.mpf]:
    tau = mpmath.mpf(float(tilt))
    values = _mp(losses)
    top = max(tau * v for v in values)
    raw = [mpmath.exp(tau * v - top) for v in values]
    total = mpmath.fsum(raw)
    return [w / total for w in raw]


def iris_loss(real: Sequence[float], generated: Sequence[float], alpha: float, beta: float = 1.0):
    """L_α = TR_{1−α}(−β r⁺) + TR_α(β r⁻)."""
    a, b = mpmath.mpf(float(alpha)), mpmath.mpf(float(beta))
    return tilted_risk([-b * mpmath.mpf(float(v)) for v in real], 1 - a) + tilted_risk(
        [b * mpmath.mpf(float(v)) for v in generated], a
    )


def condition_scale(losses: Sequence[float], tilt: float) -> mpmath.mpf:
    """Σ_i w_i |ℓ_i|: the size of TR's change under a relative perturbation of its inputs.

    The normwise relative error of a computed tilted risk is measured against this scale
    (it equals |TR| when all losses share a sign): rounding the inputs alone moves TR by
    up to eps · Σ w |ℓ|, so no algorithm can do better in that measure.
    """
    weights = tilt_weights(losses, tilt)
    return mpmath.fsum(w * abs(mpmath.mpf(float(v))) for w, v in zip(weights, losses, strict=True))


def _softplus(x: mpmath.mpf) -> mpmath.mpf:
    return mpmath.log1p(mpmath.exp(x)) if x < 0 else x + mpmath.log1p(mpmath.exp(-x))


def iris_scale(real: Sequence[float], generated: Sequence[float], alpha: float, beta: float = 1.0):
    """Σ w⁺|βr⁺| + Σ w⁻|βr⁻|: the normwise scale of the IRIS loss (see condition_scale)."""
    return condition_scale([-beta * float(v) for v in real], 1 - alpha) + condition_scale(
        [beta * float(v) for v in generated], alpha
    )


def spin_loss(real: Sequence[float], generated: Sequence[float], beta: float = 0.1):
    b = mpmath.mpf(float(beta))
    terms = [_softplus(-b * (r - g)) for r, g in zip(_mp(real), _mp(generated), strict=True)]
    return mpmath.fsum(terms) / len(terms)


def space_loss(
    real: Sequence[float], generated: Sequence[float], mu: float = 1.0, beta: float = 1.0
):
    m, b = mpmath.mpf(float(mu)), mpmath.mpf(float(beta))
    log_mu = mpmath.log(m)
    real_term = mpmath.fsum(_softplus(log_mu - b * r) for r in _mp(real)) / len(real)
    gen_term = mpmath.fsum(_softplus(b * g - log_mu) for g in _mp(generated)) / len(generated)
    return real_term + m * gen_term


def spif_loss(
    real: Sequence[float], generated: Sequence[float], beta: float = 0.1, bound: float = 2.0
):
    """−E_P[T] + E_Q[T + T²/4], T = 2(e^{r̃} − 1), r̃ = c tanh(β lr / c)."""
    b, c = mpmath.mpf(float(beta)), mpmath.mpf(float(bound))

    def critic(v):
        return 2 * (mpmath.exp(c * mpmath.tanh(b * v / c)) - 1)

    real_term = mpmath.fsum(critic(r) for r in _mp(real)) / len(real)
    gen_term = mpmath.fsum(critic(g) + critic(g) ** 2 / 4 for g in _mp(generated)) / len(generated)
    return -real_term + gen_term


def tspin_loss(real, generated, proto, scale: float = 1.0, lam: float = 0.1):
    a, lm = mpmath.mpf(float(scale)), mpmath.mpf(float(lam))
    terms = [
        _softplus(-a * (r - g)) + lm * _softplus(-a * (g - p))
        for r, g, p in zip(_mp(real), _mp(generated), _mp(proto), strict=True)
    ]
    return mpmath.fsum(terms) / len(terms)
