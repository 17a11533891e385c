"""Runs every claim of theory/ and checks the claim machinery itself.

`test_claim[<name>]` re-runs one claim's proof (symbolic or high-precision numeric); the
numerical ties of the claims to `iris.losses` are in tests/test_theory_losses.py. The
remaining tests make sure the checks can fail (a false identity is rejected), that every
claim's metadata is honest (its docstring names tests that exist) and that
theory/RESULTS.md is in step with the registry.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import sympy as sp

from theory import verify
from theory.bindings import Binding
from theory.checks import (
    is_identity,
    positive_symbols,
    real_symbols,
    require_identity,
    series_terms,
    simplex_point,
)
from theory.divergences import kl_divergence, rdv_objective, rescaled_renyi
from theory.registry import (
    METHODS,
    SCOPES,
    SOURCES,
    Claim,
    ClaimFailed,
    all_claims,
    claim,
    get_claim,
)

pytestmark = pytest.mark.theory

ROOT = Path(__file__).resolve().parents[1]
CLAIMS = all_claims()


@pytest.mark.parametrize("name", [c.name for c in CLAIMS])
def test_claim(name: str) -> None:
    """The claim's check runs to completion without raising ClaimFailed."""
    {c.name: c for c in CLAIMS}[name].check()


def test_registry_covers_the_issue() -> None:
    """Every module contributes claims, names are unique, metadata is well-formed."""
    names = [c.name for c in CLAIMS]
    assert len(names) == len(set(names)) >= 30
    assert {c.module for c in CLAIMS} == {
        "theory.tilted_risk",
        "theory.rdv",
        "theory.limits",
        "theory.special_orders",
        "theory.duality",
        "theory.fixed_point",
        "theory.concentration",
        "theory.regimes",
    }
    for c in CLAIMS:
        assert c.method in METHODS
        assert c.scope in SCOPES
        assert any(tag in c.source for tag in SOURCES)
        assert c.statement and c.check.__doc__
        assert f"tests/test_theory.py::test_claim[{c.name}]" in c.tests


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_every_declared_test_exists() -> None:
    """Each test a claim names in its docstring is a test function of that file."""
    for c in CLAIMS:
        for node in c.tests:
            match = re.fullmatch(r"(tests/[\w/]+\.py)::(\w+)(\[(\w+)\])?", node)
            assert match, f"{c.name}: malformed test id {node}"
            path = ROOT / match.group(1)
            assert path.is_file(), f"{c.name}: {path} missing"
            assert match.group(2) in _test_functions(path), f"{c.name}: {node} missing"


def test_every_claim_has_a_numerical_tie() -> None:
    """Each claim is tied to iris.losses by at least one test outside this file."""
    for c in CLAIMS:
        assert any(t.startswith("tests/test_theory_losses.py::") for t in c.tests), c.name


def test_decorator_rejects_inconsistent_docstrings() -> None:
    """A claim whose docstring does not name its source tag or tests is refused."""

    def undocumented() -> None:
        """States something, names nothing."""

    with pytest.raises(ValueError, match="does not mention"):
        claim(source="[derived]", method="symbolic", tests=("tests/x.py::t",))(undocumented)
    with pytest.raises(ValueError, match="method"):
        claim(source="[derived]", method="numeric", tests=("tests/x.py::t",))
    with pytest.raises(ValueError, match="source"):
        claim(source="derived", method="symbolic", tests=("tests/x.py::t",))


# --- the checks can fail -------------------------------------------------------------


def test_identity_check_rejects_false_statements() -> None:
    """Wrong versions of true claims are rejected by the same machinery.

    R_α is not symmetric (only R_½ is); the duality needs 1 − α, not α; the optimum is at
    log(P/Q), not log(Q/P); and D_α → KL(P‖Q), not KL(Q‖P).
    """
    p = positive_symbols("p1:4")
    q = positive_symbols("q1:4")
    g = real_symbols("g1:4")
    alpha = sp.Symbol("alpha", real=True, nonzero=True)
    assert not is_identity(rescaled_renyi(p, q, alpha), rescaled_renyi(q, p, alpha))
    assert not is_identity(
        rdv_objective(g, p, q, alpha), rdv_objective([-x for x in g], q, p, alpha)
    )
    wrong_optimum = {gi: sp.log(qi / pi) for gi, pi, qi in zip(g, p, q, strict=True)}
    derivative = sp.diff(rdv_objective(g, p, q, alpha), g[0]).subs(wrong_optimum)
    with pytest.raises(ClaimFailed):
        require_identity(derivative, 0, "stationary at log(Q/P)")
    eps = sp.Symbol("epsilon", real=True)
    ps, qs = simplex_point("s", 2), simplex_point("t", 2)
    d_near_one = (
        sp.log(sum(a ** (1 + eps) * b ** (-eps) for a, b in zip(ps, qs, strict=True))) / eps
    )
    assert is_identity(series_terms(d_near_one, eps, 0), kl_divergence(ps, qs))
    assert not is_identity(series_terms(d_near_one, eps, 0), kl_divergence(qs, ps))


def test_series_terms_detects_poles() -> None:
    """A genuine 1/ε term is a failure, a vanishing one (log Σp / ε with Σp = 1) is not."""
    eps = sp.Symbol("epsilon", real=True)
    (x,) = positive_symbols("x")
    with pytest.raises(ClaimFailed, match="pole"):
        series_terms(sp.log(1 + x) / eps, eps, 0)
    p = simplex_point("s", 3)
    assert series_terms(sp.log(sum(p)) / eps + 1, eps, 0) == 1


# --- theory.verify -------------------------------------------------------------------


def _fake_claim(name: str, passes: bool) -> Claim:
    def check() -> None:
        if not passes:
            raise ClaimFailed("deliberately false")

    return Claim(name, f"{name} statement", "[derived]", "symbolic", ("t",), check, "fake")


def _fake_binding(name: str, deviation: float) -> Binding:
    return Binding(name, ("iris_loss",), "fake witness", 1e-12, lambda: deviation)


def test_verify_reports_and_exit_status(tmp_path: Path, capsys) -> None:
    """One line per claim with PASS/FAIL, seconds, library functions and deviation, a
    summary, exit 1 on any failure: a false proof, a library deviating beyond tolerance, or
    a claim without a binding."""
    claims = [_fake_claim("good", True), _fake_claim("bad", False), _fake_claim("drift", True)]
    bindings = {
        "good": [_fake_binding("good", 3e-16)],
        "bad": [_fake_binding("bad", 0.0)],
        "drift": [_fake_binding("drift", 1e-3)],
    }
    table = tmp_path / "RESULTS.md"
    assert verify.main(["--markdown", str(table)], claims=claims, bindings=bindings) == 1
    out = capsys.readouterr().out
    assert re.search(r"^good\s+PASS\s+\d+\.\d\ds\s+symbolic\s+iris_loss\s+3\.0e-16$", out, re.M)
    assert re.search(r"^bad\s+FAIL\s+\d+\.\d\ds", out, re.M)
    assert re.search(r"^drift\s+FAIL", out, re.M) and "deviates from the claim by 1.000e-03" in out
    assert "1/3 claims passed" in out and "FAILED: bad, drift" in out
    text = table.read_text(encoding="utf-8")
    assert "| `good` |" in text and "**FAIL**" in text and "| `iris_loss` | 3.0e-16 |" in text
    assert verify.main(["--only", "good"], claims=claims, bindings=bindings) == 0
    assert verify.main(["--only", "good"], claims=claims, bindings={}) == 1  # unbound


def test_results_markdown_matches_registry() -> None:
    """theory/RESULTS.md lists exactly the registered claims, in order, all passing.

    Regenerate with `python -m theory.verify --markdown` after adding or renaming a claim.
    """
    text = (ROOT / "theory" / "RESULTS.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| \d+ \| `(\w+)` \|.*\| (PASS|\*\*FAIL\*\*) \|", text, re.M)
    assert [name for name, _ in rows] == [c.name for c in CLAIMS]
    assert all(status == "PASS" for _, status in rows)


# --- negative controls: every claim rejects a perturbed definition -----------------------


def _swapped_objective(g, p, q, alpha):
    """J with 1/α and 1/(α−1) swapped: obeys the α ↔ 1 − α exchange, but is wrong."""
    real = sp.log(th.expectation(p, [sp.exp((alpha - 1) * gi) for gi in g])) / alpha
    synthetic = sp.log(th.expectation(q, [sp.exp(alpha * gi) for gi in g])) / (alpha - 1)
    return real - synthetic


def _mp_tilted_objective(g, p, q, alpha):  # J + 0.01 (α − 1) Σ g: its supremum moves
    return _MP_OBJECTIVE(g, p, q, alpha) + 0.01 * (alpha - 1) * sum(g)


def _half_tilt_weights(losses, tau, weights=None):
    return th.tilted_weights(losses, tau / 2, weights)


def _half_risk(losses, tau, weights=None):
    return th.tilted_risk(losses, tau, weights) / 2


def _doubled_risk(losses, tau, weights=None):
    return th.tilted_risk([2 * x for x in losses], tau, weights)


def _negated_tilt_risk(losses, tau, weights=None):
    return th.tilted_risk(losses, -tau, weights)


def _reversed_kl(p, q):
    return th.kl_divergence(q, p)


def _wrong_renyi(p, q, alpha):  # divided by α instead of α − 1
    return sp.log(sum(a**alpha * b ** (1 - alpha) for a, b in zip(p, q, strict=True))) / alpha


def _wrong_mgf(t, mu, sigma):  # the MGF of N(μ, 4σ²)
    return _concentration_mgf(t, mu, 2 * sigma)


def _wrong_iris_batch_loss(real, generated, alpha, beta):  # annotated tilt α, not 1 − α
    return th.tilted_risk([-beta * r for r in real], alpha) + th.tilted_risk(
        [beta * r for r in generated], alpha
    )


def _wrong_dv(g, p, q):  # E_P g − log E_Q e^{2g}
    return th.expectation(p, g) - sp.log(th.expectation(q, [sp.exp(2 * gi) for gi in g]))


def _wrong_pearson(t, p, q):  # E_P T − E_Q (T + T²/2)
    return th.expectation(p, t) - th.expectation(q, [ti + ti**2 / 2 for ti in t])


def _wrong_critic(x, bound):  # 2(e^{2r̃} − 1)
    return 2 * (sp.exp(2 * bound * sp.tanh(x / bound)) - 1)


def _wrong_js(p, q):  # KL(P‖M) + KL(Q‖M), twice JS
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    return th.kl_divergence(p, m) + th.kl_divergence(q, m)


def _shifted_tilts(alpha):  # (α − 2, α)
    return alpha - 2, alpha


import importlib  # noqa: E402

from theory import divergences as th  # noqa: E402

_rdv = importlib.import_module("theory.rdv")
_concentration = importlib.import_module("theory.concentration")
_concentration_mgf = _concentration.gaussian_mgf
_MP_OBJECTIVE = _rdv._mp_objective

# claim → (module whose global is replaced, global name, wrong definition, what is wrong)
NEGATIVE_CONTROLS = {
    "tilted_risk_gradient_is_softmax": (
        "theory.tilted_risk",
        "tilted_weights",
        _half_tilt_weights,
        "weights of τ/2",
    ),
    "tilted_risk_small_tilt": ("theory.tilted_risk", "tilted_risk", _half_risk, "TR/2"),
    "tilted_risk_shift_equivariance": (
        "theory.tilted_risk",
        "tilted_risk",
        _doubled_risk,
        "TR of 2ℓ",
    ),
    "tilted_risk_tilt_derivative_is_kl": (
        "theory.tilted_risk",
        "kl_divergence",
        _reversed_kl,
        "KL(π‖w) for KL(w‖π)",
    ),
    "gibbs_inequality": ("theory.tilted_risk", "kl_divergence", _reversed_kl, "reversed KL"),
    "tilted_risk_monotone_and_bounded": (
        "theory.tilted_risk",
        "tilted_risk",
        _negated_tilt_risk,
        "TR_{−τ}: nonincreasing",
    ),
    "rdv_stationary_point": ("theory.rdv", "rdv_objective", _swapped_objective, "swapped J"),
    "rdv_optimal_value": ("theory.rdv", "rdv_objective", _swapped_objective, "swapped J"),
    "rdv_shift_invariance": ("theory.rdv", "rdv_objective", _swapped_objective, "swapped J"),
    "rdv_gap_decomposition": ("theory.rdv", "rdv_objective", _swapped_objective, "swapped J"),
    "rdv_global_maximum": (
        "theory.rdv",
        "_mp_objective",
        _mp_tilted_objective,
        "J + 0.01(α−1)Σg: sup moves",
    ),
    "alpha_one_objective_limit": (
        "theory.limits",
        "rdv_objective",
        _swapped_objective,
        "swapped J",
    ),
    "alpha_one_renyi_limit": ("theory.limits", "renyi_divergence", _wrong_renyi, "1/α for 1/(α−1)"),
    "alpha_zero_objective_limit": (
        "theory.limits",
        "rdv_objective",
        _swapped_objective,
        "swapped J",
    ),
    "alpha_zero_renyi_limit": (
        "theory.limits",
        "rescaled_renyi",
        th.renyi_divergence,
        "D_α for R_α",
    ),
    "half_order_symmetry": (
        "theory.special_orders",
        "rdv_objective",
        _swapped_objective,
        "swapped J",
    ),
    "half_order_bhattacharyya": (
        "theory.special_orders",
        "rescaled_renyi",
        th.renyi_divergence,
        "D_α for R_α",
    ),
    "order_two_chi_square": (
        "theory.special_orders",
        "rescaled_renyi",
        th.renyi_divergence,
        "D_α for R_α",
    ),
    "renyi_duality": ("theory.duality", "rescaled_renyi", th.renyi_divergence, "D_α for R_α"),
    "objective_duality": ("theory.duality", "rdv_objective", _swapped_objective, "swapped J"),
    "iris_gradient_importance_weights": (
        "theory.fixed_point",
        "rdv_objective",
        _swapped_objective,
        "swapped J",
    ),
    "fixed_point_gradient": (
        "theory.fixed_point",
        "rdv_objective",
        _swapped_objective,
        "swapped J",
    ),
    "fixed_point_global_minimum": (
        "theory.fixed_point",
        "rdv_objective",
        _swapped_objective,
        "swapped J",
    ),
    "nonparametric_minimiser": (
        "theory.fixed_point",
        "rdv_objective",
        _swapped_objective,
        "swapped J",
    ),
    "gaussian_ess_fraction": ("theory.concentration", "gaussian_mgf", _wrong_mgf, "N(μ, 4σ²)"),
    "iris_tilts_ess": ("theory.concentration", "iris_tilts", _shifted_tilts, "tilts (α−2, α)"),
    "near_fixed_point_weights": (
        "theory.regimes",
        "iris_batch_loss",
        _wrong_iris_batch_loss,
        "annotated tilt α",
    ),
    "shared_optimal_discriminator": ("theory.regimes", "dv_objective", _wrong_dv, "DV with e^{2g}"),
    "pearson_chi2_variational": (
        "theory.regimes",
        "pearson_objective",
        _wrong_pearson,
        "T²/2 for T²/4",
    ),
    "spif_linearises_order_two": ("theory.regimes", "spif_critic", _wrong_critic, "critic e^{2r̃}"),
    "space_jensen_shannon": ("theory.regimes", "jensen_shannon", _wrong_js, "2 JS for JS"),
}


def test_every_claim_has_a_negative_control() -> None:
    assert set(NEGATIVE_CONTROLS) == {c.name for c in CLAIMS}


@pytest.mark.parametrize("name", sorted(NEGATIVE_CONTROLS))
def test_negative_control(name: str, monkeypatch) -> None:
    """The claim's check rejects (ClaimFailed) a perturbed definition of what it is about:
    a claim that passes whatever J, TR, KL, … are would prove nothing."""
    module, attribute, wrong, _ = NEGATIVE_CONTROLS[name]
    module = importlib.import_module(module)
    assert hasattr(module, attribute), f"{module.__name__}.{attribute}"
    monkeypatch.setattr(module, attribute, wrong)
    with pytest.raises(ClaimFailed):
        get_claim(name).check()


from theory import general as G  # noqa: E402

_G_TILTED_RISK, _G_RESCALED_RENYI = G.tilted_risk, G.rescaled_renyi  # before monkeypatching
_G_JENSEN_SHANNON = G.jensen_shannon


def _general_swapped_objective(g, p, q, alpha):
    """General-n J with 1/α and 1/(α−1) swapped."""
    real = sp.log(G.total(p(G.IX) * sp.exp((alpha - 1) * g(G.IX)))) / alpha
    synthetic = sp.log(G.total(q(G.IX) * sp.exp(alpha * g(G.IX)))) / (alpha - 1)
    return real - synthetic


def _general_d_for_r(p, q, alpha):  # D_α instead of R_α = D_α/α
    return _G_RESCALED_RENYI(p, q, alpha) * alpha


def _general_doubled_risk(loss, tau, base):
    return _G_TILTED_RISK(lambda j: 2 * loss(j), tau, base)


def _general_half_tilt_risk(loss, tau, base):
    return _G_TILTED_RISK(loss, tau / 2, base)


def _general_wrong_dv(g, p, q):  # Σ p g − log Σ q e^{2g}
    return G.total(p(G.IX) * g(G.IX)) - sp.log(G.total(q(G.IX) * sp.exp(2 * g(G.IX))))


def _general_wrong_pearson(t, p, q):  # T²/2 for T²/4
    return G.total(p(G.IX) * t(G.IX)) - G.total(q(G.IX) * (t(G.IX) + t(G.IX) ** 2 / 2))


def _general_doubled_js(p, q):  # 2 JS for JS
    return 2 * _G_JENSEN_SHANNON(p, q)


def _general_ess_not_divided(weight):  # ESS instead of ESS/n
    return 1 / G.total(weight(G.IX) ** 2)


def test_linear_sums_nested() -> None:
    """A double sum Σ_i Σ_j is split innermost first: the Lagrange identity
    n Σx² − (Σx)² = ½ Σ_{i,j} (x_i − x_j)² holds, with a wrong factor it does not."""
    xb = G.positive_base("x")
    x_i, x_j = xb[G.IX], xb[G.JX]
    double = G.total(G.total((x_i - x_j) ** 2, G.JX))
    difference = G.N * G.total(x_i**2) - G.total(x_i) ** 2
    assert G.is_zero(difference - double / 2)
    assert not G.is_zero(difference - double)
    assert not G.is_zero(G.N * G.total(x_i**2) - double / 2)


def test_sum_series_checks_its_remainder() -> None:
    """Too short a per-term expansion leaves the remainder in the result: refused."""
    ell, base = G.real_base("l"), G.positive_base("pi")
    tau = sp.Symbol("tau", real=True, nonzero=True)
    value = G.tilted_risk(lambda j: ell[j], tau, lambda j: base[j])
    G.sum_series(value, tau, 1, 2)
    with pytest.raises(ClaimFailed, match="remainder"):
        G.sum_series(value, tau, 1, 1)
    p = G.positive_base("p")
    with pytest.raises(ClaimFailed, match="pole"):  # log Σ p e^{τℓ} / τ without Σp = 1
        G.sum_series(sp.log(G.total(p[G.IX] * sp.exp(tau * ell[G.IX]))) / tau, tau, 0, 1)


# General-n claims: the same kind of perturbation applied to theory.general's closed forms
# only (the 3-atom part of the claim still passes), so the general-n proof is not vacuous.
GENERAL_NEGATIVE_CONTROLS = {
    "tilted_risk_gradient_is_softmax": ("tilted_risk", _general_half_tilt_risk),
    "tilted_risk_shift_equivariance": ("tilted_risk", _general_doubled_risk),
    "tilted_risk_tilt_derivative_is_kl": ("tilted_risk", _general_doubled_risk),
    "rdv_stationary_point": ("rdv_objective", _general_swapped_objective),
    "rdv_optimal_value": ("rdv_objective", _general_swapped_objective),
    "rdv_shift_invariance": ("rdv_objective", _general_swapped_objective),
    "rdv_gap_decomposition": ("rdv_objective", _general_swapped_objective),
    "renyi_duality": ("rescaled_renyi", _general_d_for_r),
    "objective_duality": ("rdv_objective", _general_swapped_objective),
    "half_order_symmetry": ("rdv_objective", _general_swapped_objective),
    "half_order_bhattacharyya": ("rescaled_renyi", _general_d_for_r),
    "order_two_chi_square": ("rescaled_renyi", _general_d_for_r),
    "tilted_risk_small_tilt": ("tilted_risk", _general_doubled_risk),
    "tilted_risk_monotone_and_bounded": ("tilted_risk", _general_doubled_risk),
    "alpha_one_objective_limit": ("rdv_objective", _general_swapped_objective),
    "alpha_one_renyi_limit": ("rescaled_renyi", _general_d_for_r),
    "alpha_zero_objective_limit": ("rdv_objective", _general_swapped_objective),
    "alpha_zero_renyi_limit": ("rescaled_renyi", _general_d_for_r),
    "iris_gradient_importance_weights": ("rdv_objective", _general_swapped_objective),
    "fixed_point_gradient": ("rdv_objective", _general_swapped_objective),
    "fixed_point_global_minimum": ("rdv_objective", _general_swapped_objective),
    "nonparametric_minimiser": ("rdv_objective", _general_swapped_objective),
    "near_fixed_point_weights": ("tilted_risk", _general_doubled_risk),
    "shared_optimal_discriminator": ("dv_objective", _general_wrong_dv),
    "pearson_chi2_variational": ("pearson_objective", _general_wrong_pearson),
    "spif_linearises_order_two": ("tilted_risk", _general_doubled_risk),
    "space_jensen_shannon": ("jensen_shannon", _general_doubled_js),
    "rdv_global_maximum": ("rdv_objective", _general_swapped_objective),
    "gaussian_ess_fraction": ("ess_fraction", _general_ess_not_divided),
}


def test_general_claims_are_marked_and_controlled() -> None:
    """Every claim marked general n has a general-n negative control (or no atoms)."""
    general = {c.name for c in CLAIMS if c.scope == "general n"}
    no_atoms = {"iris_tilts_ess", "gibbs_inequality"}  # scalar; gibbs: identity of sums
    assert set(GENERAL_NEGATIVE_CONTROLS) | no_atoms == general


@pytest.mark.parametrize("name", sorted(GENERAL_NEGATIVE_CONTROLS))
def test_general_negative_control(name: str, monkeypatch) -> None:
    """The general-n part of the claim rejects a perturbed general-n definition."""
    attribute, wrong = GENERAL_NEGATIVE_CONTROLS[name]
    monkeypatch.setattr(G, attribute, wrong)
    with pytest.raises(ClaimFailed, match="general n"):
        get_claim(name).check()
