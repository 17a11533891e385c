"""Exact distances between a model and the testbed's target: the ``testbed`` evaluator.

For each prompt x (uniform over the target's prompts) the model's law of responses is
``p_θ(y|x)`` = the product of its next-token probabilities over the response's symbols
and the closing end-of-turn token. With the support Y (every symbol sequence of length
1..L) enumerated, everything is exact:

- forward KL ``Σ_y p_data(y) (log p_data(y) − log p_θ(y))``;
- invalid rate ``1 − Σ_{y∈Y} p_θ(y)``: the model's mass on strings that are not responses
  of the target (other tokens, too long, no end);
- reverse KL on valid samples ``KL(q ‖ p_data)``, q = p_θ restricted to Y, renormalised;
- total variation ``½ (Σ_{y∈Y} |p_data − p_θ| + invalid rate)``;
- ``real_loglik`` = ``E_{p_data} log p_θ(y)`` (= −(H(p_data) + forward KL)): the
  log-likelihood of annotated responses, whose fall is likelihood displacement;
- ``renyi_gap/alpha=a`` for a in :data:`~iris.testbed.renyi.REPORTED_ALPHAS`: the exact gap
  ``R_a(p_data ‖ p_θ) = D_a/a`` of the joint (prompt, response) laws, the quantity the
  IRIS objective's ``−L_a`` estimates (:mod:`iris.testbed.renyi`; ``alpha=1`` equals the
  forward KL).

When the support is too large to enumerate (``max_support`` sequences per prompt), the
forward KL is estimated from ``samples`` draws of p_data (the same draws for every
model: paired Monte Carlo) with its standard error, and the other metrics are NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from iris.evaluation.base import register_evaluator, runs_at
from iris.runs import atomic_write_json
from iris.testbed.renyi import REPORTED_ALPHAS, renyi_gap
from iris.testbed.task import TargetSpec, response_text

SUMMARY_NAME = "testbed"


def _model_and_tokenizer(model_dir: Path, model, tokenizer):
    if model is not None and tokenizer is not None:
        return model, tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (
        model if model is not None else AutoModelForCausalLM.from_pretrained(model_dir),
        tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(model_dir),
    )


def encode_responses(tokenizer, prompts: list[int], responses: list[tuple[int, ...]]):
    """(prompt index, response) pairs encoded in the training format."""
    from iris.data import format_completion, format_prompts
    from iris.scoring import encode_pairs

    names = [f"p{k}" for k in prompts]
    unique = sorted(set(names))
    formatted = dict(zip(unique, format_prompts(tokenizer, unique), strict=True))
    completions = [
        format_completion(tokenizer, p, response_text(r))
        for p, r in zip(names, responses, strict=True)
    ]
    return encode_pairs(tokenizer, [formatted[p] for p in names], completions)


def exact_metrics(target, model, encoded_support) -> dict[str, float]:
    """Every metric, exactly, from the model's log-probs of the whole support.

    ``encoded_support``: :func:`encode_responses` of every (prompt, response of the
    support), prompt-major (as :meth:`exact_support_pairs` lists them).
    """
    from iris.scoring import encoded_log_probs

    data_log_probs = target.support_log_probs()  # (K, |Y|)
    model_log_probs = encoded_log_probs(model, encoded_support).reshape(data_log_probs.shape)
    p_data, p_model = np.exp(data_log_probs), np.exp(model_log_probs)
    valid_mass = p_model.sum(axis=1)
    invalid = np.clip(1.0 - valid_mass, 0.0, 1.0)
    q = p_model / valid_mass[:, None]
    per_prompt = {
        "forward_kl": (p_data * (data_log_probs - model_log_probs)).sum(axis=1),
        # q log q → 0 where the model's probability underflows to 0.
        "reverse_kl": np.where(
            q > 0, q * (model_log_probs - np.log(valid_mass)[:, None] - data_log_probs), 0.0
        ).sum(axis=1),
        "invalid_rate": invalid,
        "total_variation": 0.5 * (np.abs(p_data - p_model).sum(axis=1) + invalid),
        "real_loglik": (p_data * model_log_probs).sum(axis=1),
    }
    metrics = {name: float(values.mean()) for name, values in per_prompt.items()}
    metrics.update(forward_kl_se=0.0, reverse_kl_se=0.0)
    for alpha in REPORTED_ALPHAS:  # prompts uniform, as above and as the data draws them
        metrics[renyi_gap_key(alpha)] = renyi_gap(data_log_probs, model_log_probs, alpha)
    return metrics


def renyi_gap_key(alpha: float) -> str:
    """The metric name of the exact gap at order α: ``renyi_gap/alpha=0.5``."""
    return f"renyi_gap/alpha={float(alpha):g}"


# The metrics only an enumerated support gives (NaN when the forward KL is sampled).
EXACT_ONLY = (
    "reverse_kl", "reverse_kl_se", "invalid_rate", "total_variation",
    *map(renyi_gap_key, REPORTED_ALPHAS),
)  # fmt: skip


def exact_support_pairs(target) -> tuple[list[int], list[tuple[int, ...]]]:
    support = target.support()
    prompts = [k for k in range(target.num_prompts) for _ in support]
    return prompts, [y for _ in range(target.num_prompts) for y in support]


def sampled_metrics(target, model, tokenizer, *, samples: int, seed: int) -> dict[str, float]:
    """Forward KL and annotated log-likelihood by paired Monte Carlo (fixed draws of p_data)."""
    rng = np.random.default_rng(seed)
    prompts = [int(k) for k in rng.integers(target.num_prompts, size=samples)]
    responses = [target.sample(k, rng) for k in prompts]
    from iris.scoring import encoded_log_probs

    data = np.array([target.log_prob(k, y) for k, y in zip(prompts, responses, strict=True)])
    model_lp = encoded_log_probs(model, encode_responses(tokenizer, prompts, responses))
    diff = data - model_lp
    return {
        "forward_kl": float(diff.mean()),
        "forward_kl_se": float(diff.std(ddof=1) / math.sqrt(samples)),
        "real_loglik": float(model_lp.mean()),
        **dict.fromkeys(EXACT_ONLY, math.nan),
    }


@register_evaluator("testbed")
class TestbedEvaluator:
    """The ``testbed`` evaluator kind: ``{"kind": "testbed", "target": {...}, "every": 1}``."""

    name = SUMMARY_NAME

    def __init__(
        self,
        *,
        target: Mapping[str, Any] | None = None,
        every: int = 1,
        max_support: int = 20_000,
        samples: int = 4096,
        seed: int = 0,
    ):
        self.spec = TargetSpec.from_mapping(target)
        self.target = self.spec.build()
        self.every, self.max_support, self.samples, self.seed = every, max_support, samples, seed
        self._encoded: tuple[Any, Any] | None = None

    def should_run(self, iteration: int, num_iterations: int) -> bool:
        return runs_at(iteration, num_iterations, every=self.every)

    @property
    def exact(self) -> bool:
        s, n = self.target.num_symbols, self.target.max_length
        return sum(s**length for length in range(1, n + 1)) <= self.max_support

    def metric_names(self) -> frozenset[str]:
        """The flat keys :meth:`evaluate` reports as numbers (sampled: the forward KL, its
        standard error and the annotated log-likelihood)."""
        names = ["forward_kl", "forward_kl_se", "real_loglik", *(EXACT_ONLY if self.exact else ())]
        return frozenset(f"{SUMMARY_NAME}/{name}" for name in names)

    def score(self, model, tokenizer) -> dict[str, float]:
        """The metrics of an in-memory model (no files written)."""
        if self.exact:
            key = (getattr(tokenizer, "name_or_path", ""), len(tokenizer), tokenizer.chat_template)
            if self._encoded is None or self._encoded[0] != key:  # encode the support once
                self._encoded = (
                    key,
                    encode_responses(tokenizer, *exact_support_pairs(self.target)),
                )
            return exact_metrics(self.target, model, self._encoded[1])
        return sampled_metrics(self.target, model, tokenizer, samples=self.samples, seed=self.seed)

    def evaluate(
        self, model_dir: Path, *, iteration: int, output_dir: Path, model=None, tokenizer=None
    ) -> dict[str, float]:
        model, tokenizer = _model_and_tokenizer(Path(model_dir), model, tokenizer)
        metrics = self.score(model, tokenizer)
        flat = {f"testbed/{name}": value for name, value in sorted(metrics.items())}
        flat["average"] = math.nan  # a distance suite has no benchmark average
        atomic_write_json(
            Path(output_dir) / f"{SUMMARY_NAME}.summary.json",
            {
                "suite": SUMMARY_NAME,
                "iteration": iteration,
                "exact": self.exact,
                "target": self.spec.to_dict(),
                "average": math.nan,
                "flat": flat,
            },
        )
        return flat
