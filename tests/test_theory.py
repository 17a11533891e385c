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
from theory.checks import (
    is_identity,
    positive_symbols,
    real_symbols,
    require_identity,
    series_terms,
    simplex_point,
)
from theory.divergences import kl_divergence, rdv_objective, rescaled_renyi
from theory.registry import METHODS, SOURCES, Claim, ClaimFailed, all_claims, claim

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


def test_verify_reports_and_exit_status(tmp_path: Path, capsys) -> None:
    """One line per claim with PASS/FAIL and seconds, a summary, exit 1 on any failure."""
    claims = [_fake_claim("good", True), _fake_claim("bad", False)]
    table = tmp_path / "RESULTS.md"
    assert verify.main(["--markdown", str(table)], claims=claims) == 1
    out = capsys.readouterr().out
    assert re.search(r"^good\s+PASS\s+\d+\.\d\ds\s+symbolic$", out, re.M)
    assert re.search(r"^bad\s+FAIL\s+\d+\.\d\ds", out, re.M)
    assert "1/2 claims passed" in out and "FAILED: bad" in out
    text = table.read_text(encoding="utf-8")
    assert "| `good` |" in text and "**FAIL**" in text
    assert verify.main(["--only", "good"], claims=claims) == 0


def test_results_markdown_matches_registry() -> None:
    """theory/RESULTS.md lists exactly the registered claims, in order, all passing.

    Regenerate with `python -m theory.verify --markdown` after adding or renaming a claim.
    """
    text = (ROOT / "theory" / "RESULTS.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| \d+ \| `(\w+)` \|.*\| (PASS|\*\*FAIL\*\*) \|", text, re.M)
    assert [name for name, _ in rows] == [c.name for c in CLAIMS]
    assert all(status == "PASS" for _, status in rows)
