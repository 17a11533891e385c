"""The claim registry: what a claim is, how it is declared, and the list of all claims.

A claim is a function without arguments that raises `ClaimFailed` when the statement in its
docstring does not hold. It is declared with the `@claim(...)` decorator, which records

- `source`: where the statement comes from, tagged as in `docs/objective.md`
  ([paper], [secondary], [derived], [choice]);
- `method`: how it is established — "symbolic" (a sympy proof: identities by
  `simplify(lhs - rhs) == 0`, limits by `limit`/`series`), "exact-rational" (exact
  arithmetic on rational instances) or "mpmath-numeric" (high-precision numerics);
- `scope`: "general n" when the proof holds for any number of atoms (indexed sums with a
  symbolic n, `theory.general`), "instance" when it is checked on a generic 3-atom (or
  3-sample) instance with symbolic weights; the docstring says why (RESULTS.md lists both);
- `theorems`: the standard theorems the proof cites rather than checks (Taylor's theorem,
  the chain rule, the fundamental theorem of calculus, the strong law of large numbers, …);
  every other step is a sympy computation. RESULTS.md lists them per claim;
- `tests`: the pytest node ids that enforce it. `tests/test_theory.py::test_claim[<name>]`
  re-runs the claim itself; the others tie it to the numbers computed by `iris.losses`.

The docstring of a claim must name its source tag and every one of its tests; the decorator
refuses a claim whose docstring does not (so the documentation cannot drift from the
registry). `all_claims()` imports the claim modules in a fixed order and returns the claims
in declaration order.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable

METHODS = ("symbolic", "exact-rational", "mpmath-numeric")
SCOPES = ("general n", "instance")
SOURCES = ("[paper]", "[secondary]", "[derived]", "[choice]")

# Import order = report order (roughly the order of objective.md).
CLAIM_MODULES = (
    "theory.tilted_risk",
    "theory.rdv",
    "theory.limits",
    "theory.special_orders",
    "theory.duality",
    "theory.fixed_point",
    "theory.concentration",
    "theory.regimes",
)


class ClaimFailed(AssertionError):
    """Raised by a claim whose statement could not be established."""


@dataclasses.dataclass(frozen=True)
class Claim:
    """One registered claim. `check()` returns None or raises `ClaimFailed`."""

    name: str
    statement: str
    source: str
    method: str
    tests: tuple[str, ...]
    check: Callable[[], None]
    module: str
    scope: str = "instance"
    theorems: tuple[str, ...] = ()


_REGISTRY: dict[str, Claim] = {}


def _first_paragraph(doc: str) -> str:
    paragraph = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return " ".join(paragraph.split())


def claim(
    *,
    source: str,
    method: str,
    tests: tuple[str, ...],
    scope: str = "instance",
    theorems: tuple[str, ...] = (),
) -> Callable:
    """Register the decorated function as a claim (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    tags = [tag for tag in SOURCES if tag in source]
    if not tags:
        raise ValueError(f"source must contain one of {SOURCES}, got {source!r}")
    if not tests:
        raise ValueError("a claim needs at least one enforcing test")

    def register(fn: Callable[[], None]) -> Callable[[], None]:
        doc = fn.__doc__ or ""
        missing = [t for t in (*tags, *tests) if t not in doc]
        if missing:
            raise ValueError(f"docstring of claim {fn.__name__} does not mention {missing}")
        if fn.__name__ in _REGISTRY and _REGISTRY[fn.__name__].module != fn.__module__:
            raise ValueError(f"duplicate claim name {fn.__name__}")
        _REGISTRY[fn.__name__] = Claim(
            name=fn.__name__,
            statement=_first_paragraph(doc),
            source=source,
            method=method,
            tests=tuple(tests),
            check=fn,
            module=fn.__module__,
            scope=scope,
            theorems=tuple(theorems),
        )
        return fn

    return register


def all_claims() -> list[Claim]:
    """Every registered claim, modules in `CLAIM_MODULES` order, declaration order within."""
    for module in CLAIM_MODULES:
        importlib.import_module(module)
    order = {module: i for i, module in enumerate(CLAIM_MODULES)}
    return sorted(_REGISTRY.values(), key=lambda c: order.get(c.module, len(order)))


def get_claim(name: str) -> Claim:
    """The claim called `name` (KeyError if there is none)."""
    return {c.name: c for c in all_claims()}[name]
