"""Symbolic proofs of the IRIS claims (docs/objective.md), one claim per function.

Each claim is a function registered with `theory.registry.claim`, whose docstring states
the claim, its source tag ([paper]/[secondary]/[derived]/[choice]) and the tests that
enforce it; `method` records whether it is proved symbolically with sympy or checked with
exact or high-precision numerics. Modules, in the order of objective.md:

- `theory.tilted_risk`    — TR_τ: softmax gradient, τ → 0, monotone in τ, bounds (claim 6)
- `theory.rdv`            — Rényi–Donsker–Varadhan: optimum log(P/Q) + c, value D_α/α (1)
- `theory.limits`         — α → 1 (KL, DV) and α → 0 (reverse KL) (claims 2, 3)
- `theory.special_orders` — α = ½ (Bhattacharyya, symmetry), α = 2 (χ²) (claim 4)
- `theory.duality`        — R_α(P‖Q) = R_{1−α}(Q‖P), L_α(g; P, Q) = L_{1−α}(−g; Q, P) (5)
- `theory.fixed_point`    — self-play fixed point, non-parametric minimiser (claim 7)
- `theory.concentration`  — ESS of exponential weights for Gaussian rewards (claim 8)
- `theory.regimes`        — SPIN / SPACE / SPIF: identities versus regimes (claim 9)

`theory.divergences` holds the closed forms, `theory.checks` the equality machinery,
`theory.general` the general-n machinery (indexed sums over n atoms, n symbolic) and
`theory.bindings` the ties of every claim to the library: its witness evaluated with
`iris.losses` in float64 against the closed form. Run everything with
`python -m theory.verify` (results: theory/RESULTS.md): a claim passes only when its proof
holds and the library agrees, so a bug in `iris.losses` fails it.
"""

from theory.registry import Claim, ClaimFailed, all_claims, get_claim

__all__ = ["Claim", "ClaimFailed", "all_claims", "get_claim"]
