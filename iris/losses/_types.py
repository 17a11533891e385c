"""Result types and input checks shared by the loss functions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class LossOutput:
    """What every self-play loss returns.

    Attributes:
        loss: scalar tensor, the quantity to minimise.
        real_weights: (B,) detached per-sample gradient weights of the annotated responses,
            ``−(1/β) ∂loss/∂real_logratios`` (or the analogue for reference-free losses).
        generated_weights: (B',) detached weights of the synthetic responses,
            ``(1/β) ∂loss/∂generated_logratios``.
        metrics: detached scalar diagnostics (names are stable; loggers use them as keys).
    """

    loss: Tensor
    real_weights: Tensor
    generated_weights: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class TiltNormalizer:
    """Statistics of one tilted-risk term over the whole optimisation batch.

    Attributes:
        risk: detached scalar, the term's tilted risk ``TR_τ(ℓ)`` over the whole batch
            (all micro-batches of a gradient-accumulation cycle, all ranks).
        count: number of samples of that term in the whole batch.

    Given these, a micro-batch can compute its exact share of the global weights,
    ``w_i = exp(τ (ℓ_i − risk)) / count``, which sum to one over the whole batch.
    """

    risk: Tensor
    count: int

    def __post_init__(self) -> None:
        if self.count <= 0:
            raise ValueError(f"TiltNormalizer.count must be positive, got {self.count}")


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (bf16/fp16 are upcast)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def as_compute(tensor: Tensor, name: str, dtype: torch.dtype) -> Tensor:
    """Validate a 1-D non-empty finite floating tensor and upcast it (differentiably)."""
    if not isinstance(tensor, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {tensor.dtype}")
    if tensor.dim() != 1:
        raise ValueError(
            f"{name} must be 1-D (one value per sequence), got shape {tuple(tensor.shape)}"
        )
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty: a loss needs at least one sequence")
    if not bool(torch.isfinite(tensor).all()):
        bad = torch.nonzero(~torch.isfinite(tensor)).flatten()[:5].tolist()
        raise ValueError(f"{name} has non-finite values at positions {bad}")
    return tensor.to(dtype)


def same_shape(a: Tensor, b: Tensor, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names} must have the same shape (one pair per prompt), got "
            f"{tuple(a.shape)} and {tuple(b.shape)}"
        )


def positive(value: float | Tensor, name: str) -> float | Tensor:
    """Check a hyper-parameter is finite and > 0 (accepts a Python number or 0-d tensor)."""
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {number}")
    return value


def nonnegative(value: float, name: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {number}")
    return value
