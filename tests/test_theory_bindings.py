"""The claims of theory/ bound to the library: theory/bindings.py, and verify's use of it.

Every claim has at least one binding (a float64 evaluation of `iris.losses` on the claim's
witness against the closed form); every binding holds on the real library; and a wrong
library — a loss monkeypatched to compute something else — fails `theory.verify`.
"""

from __future__ import annotations

import pytest
import torch

import iris.losses
import iris.losses._iris as iris_module
from theory import verify
from theory.bindings import all_bindings, run_binding
from theory.registry import ClaimFailed, all_claims, get_claim

pytestmark = pytest.mark.theory

CLAIMS = all_claims()
BINDINGS = all_bindings()


def test_every_claim_is_bound_to_the_library() -> None:
    names = {c.name for c in CLAIMS}
    assert set(BINDINGS) == names
    for name, bindings in BINDINGS.items():
        for b in bindings:
            assert b.functions and b.witness and 0 < b.tolerance <= 1e-8, name
            for function in b.functions:
                assert callable(getattr(iris.losses, function)), (name, function)


@pytest.mark.parametrize("name", sorted(BINDINGS))
def test_binding_holds(name: str) -> None:
    """The library agrees with the claim on its witness within the binding's tolerance."""
    for binding in BINDINGS[name]:
        assert run_binding(binding) <= binding.tolerance


def _swapped_tilts(alpha, dtype, device):
    """Mutant: the annotated tilt α − 1 instead of 1 − α (J's 1/(α−1) and 1/α mixed up)."""
    alpha64 = torch.as_tensor(alpha, dtype=torch.float64, device=device)
    return (alpha64 - 1.0).to(dtype), alpha64.to(dtype)


def _scaled(fn, factor: float):
    def wrong(*args, **kwargs):
        out = fn(*args, **kwargs)
        return type(out)(out.loss * factor, out.real_weights, out.generated_weights, out.metrics)

    return wrong


WRONG_LIBRARIES = {
    "iris_tilt_sign": (iris_module, "_tilts", _swapped_tilts, "objective_duality"),
    "iris_scaled": (
        iris.losses,
        "iris_loss",
        _scaled(iris.losses.iris_loss, 1.001),
        "rdv_optimal_value",
    ),
    "space_scaled": (
        iris.losses,
        "space_loss",
        _scaled(iris.losses.space_loss, 0.999),
        "space_jensen_shannon",
    ),
    "tilted_risk_mean": (
        iris.losses,
        "tilted_risk",
        lambda losses, tilt: losses.mean(-1) + 0 * tilt,
        "tilted_risk_tilt_derivative_is_kl",
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG_LIBRARIES))
def test_verify_fails_on_a_wrong_library(case: str, monkeypatch, capsys) -> None:
    """A library bug fails `python -m theory.verify` (the proof alone would still pass)."""
    module, attribute, wrong, claim_name = WRONG_LIBRARIES[case]
    claim = get_claim(claim_name)
    monkeypatch.setattr(module, attribute, wrong)
    assert verify.main(["--only", claim_name], claims=[claim]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "library" in out
    with pytest.raises(ClaimFailed, match="deviates"):
        for binding in BINDINGS[claim_name]:
            run_binding(binding)


def test_a_nan_deviation_fails() -> None:
    """A NaN from the library is a failure, not a deviation that `max` skips."""
    from theory.bindings import Binding, max_abs

    assert max_abs(1e-16, float("nan")) == float("inf")
    assert max_abs(torch.tensor([0.0, float("nan")]), 0.5) == float("inf")
    with pytest.raises(ClaimFailed, match="deviates"):
        run_binding(Binding("x", ("iris_loss",), "w", 1e-12, lambda: max_abs(float("nan"))))
