"""Calling a registry loss from what its signature names (no loss-name branches).

Every function in :data:`iris.losses.LOSSES` names its tensor inputs positionally
(``real_logratios``, ``generated_logratios``, ``real_logps``, ``proto_logps``, ...) and
its hyper-parameters keyword-only. A :class:`LossSpec` reads that signature once:

- the *response groups* the loss needs are the prefixes of its tensor names (``real``,
  ``generated``, ``proto``); each group is one response column of the dataset;
- the *hyper-parameters* are the keyword-only parameters; the trainer passes those its
  config sets and leaves the function's defaults for the others;
- *whole-batch normalisers*: a loss whose signature has ``<group>_normalizer``
  parameters is paired (in :data:`NORMALIZERS`) with the function that computes them
  from the detached tensors of the whole optimisation batch.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from iris.losses import LOSSES, LossOutput, iris_loss, iris_normalizers

# Loss function → function computing its whole-batch normalisers, which takes the same
# tensor names and returns one normaliser per ``<group>_normalizer`` parameter of the
# loss, in the order of its own tensor parameters.
NORMALIZERS: dict[Callable[..., LossOutput], Callable[..., tuple[Any, ...]]] = {
    iris_loss: iris_normalizers,
}

# The response group of the annotated and of the synthetic response always exist; any
# other group (e.g. T-SPIN's ``proto``) is an extra dataset column.
REAL, GENERATED = "real", "generated"
TENSOR_SUFFIXES = ("_logratios", "_logps")


def _tensor_parameters(
    function: Callable[..., Any],
) -> tuple[tuple[str, ...], dict[str, inspect.Parameter]]:
    params = inspect.signature(function).parameters
    tensors = tuple(
        name
        for name, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )
    keywords = {name: p for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    for name in tensors:
        if not name.endswith(TENSOR_SUFFIXES):
            raise TypeError(
                f"{function.__name__}: tensor parameter {name!r} must end in one of {TENSOR_SUFFIXES}"
            )
    return tensors, keywords


def _group(tensor_name: str) -> str:
    for suffix in TENSOR_SUFFIXES:
        if tensor_name.endswith(suffix):
            return tensor_name[: -len(suffix)]
    raise AssertionError(tensor_name)


@dataclass(frozen=True)
class LossSpec:
    """What the trainer needs to know about one registry loss, read from its signature."""

    name: str
    function: Callable[..., LossOutput]
    tensor_names: tuple[str, ...]
    hyperparameters: Mapping[str, inspect.Parameter]
    normalizer: Callable[..., tuple[Any, ...]] | None
    normalizer_tensor_names: tuple[str, ...]

    @property
    def groups(self) -> tuple[str, ...]:
        """Response groups, ``real`` and ``generated`` first, then the extra ones."""
        named = [_group(n) for n in self.tensor_names]
        extra = [g for g in dict.fromkeys(named) if g not in (REAL, GENERATED)]
        return (REAL, GENERATED, *extra)

    @property
    def extra_groups(self) -> tuple[str, ...]:
        return self.groups[2:]

    @property
    def takes_alpha(self) -> bool:
        return "alpha" in self.hyperparameters

    @property
    def normalizer_parameters(self) -> tuple[str, ...]:
        return tuple(f"{_group(n)}_normalizer" for n in self.normalizer_tensor_names)

    def accepts(self, hyperparameter: str) -> bool:
        return hyperparameter in self.hyperparameters and not hyperparameter.endswith("_normalizer")

    def required_hyperparameters(self) -> frozenset[str]:
        return frozenset(
            name
            for name, p in self.hyperparameters.items()
            if p.default is inspect.Parameter.empty and not name.endswith("_normalizer")
        )

    def __call__(
        self,
        tensors: Mapping[str, Tensor],
        hyperparameters: Mapping[str, Any],
        normalizers: tuple[Any, ...] | None = None,
    ) -> LossOutput:
        """Call the loss with the tensors it names, the given hyper-parameters and normalisers."""
        kwargs = {k: v for k, v in hyperparameters.items() if self.accepts(k)}
        if normalizers is not None:
            kwargs.update(zip(self.normalizer_parameters, normalizers, strict=True))
        return self.function(*(tensors[name] for name in self.tensor_names), **kwargs)

    def normalizers(
        self, tensors: Mapping[str, Tensor], hyperparameters: Mapping[str, Any]
    ) -> tuple[Any, ...]:
        """Whole-batch normalisers from the detached tensors of the whole optimisation batch."""
        assert self.normalizer is not None
        params = inspect.signature(self.normalizer).parameters
        kwargs = {k: v for k, v in hyperparameters.items() if k in params}
        return self.normalizer(*(tensors[name] for name in self.normalizer_tensor_names), **kwargs)

    def probe(self, hyperparameters: Mapping[str, Any]) -> LossOutput:
        """Call the loss on zero inputs: validates hyper-parameter values, lists its metrics."""
        zeros = {name: torch.zeros(2) for name in self.tensor_names}
        return self(zeros, hyperparameters)


def loss_spec(name: str) -> LossSpec:
    """The :class:`LossSpec` of registry loss ``name``; ``ValueError`` for an unknown name."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
    function = LOSSES[name]
    tensors, keywords = _tensor_parameters(function)
    normalizer = NORMALIZERS.get(function)
    normalizer_tensors: tuple[str, ...] = ()
    if normalizer is not None:
        normalizer_tensors, _ = _tensor_parameters(normalizer)
        missing = {f"{_group(n)}_normalizer" for n in normalizer_tensors} - set(keywords)
        if missing:
            raise TypeError(f"{function.__name__} has no parameter(s) {sorted(missing)}")
    spec = LossSpec(name, function, tensors, keywords, normalizer, normalizer_tensors)
    for tensor_name in tensors:
        group = _group(tensor_name)
        if tensor_name.endswith("_logratios") and group not in (REAL, GENERATED):
            raise TypeError(
                f"{function.__name__}: reference log-probs are computed for the real and generated "
                f"responses only, not for {group!r}"
            )
    return spec
