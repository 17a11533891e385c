"""Log-probabilities of given responses under a causal LM, in the training format.

Owns one computation: ``log p_θ(completion | prompt)`` summed over the completion's
tokens, for many (prompt, completion) string pairs, in batches, with the prompt and
completion strings exactly as training sees them (:func:`iris.data.format_prompt`,
:func:`iris.data.format_completion`). The completion starts where the tokenised prompt
and the tokenised prompt + completion diverge, as in TRL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token id lists.

    >>> common_prefix([1, 2, 3], [1, 2, 4, 5])
    2
    """
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class EncodedPairs:
    """Token ids of prompt + completion per row, and where each completion starts."""

    ids: list[list[int]]
    starts: list[int]
    pad_token_id: int


def encode_pairs(tokenizer, prompts: Sequence[str], completions: Sequence[str]) -> EncodedPairs:
    """Encode (prompt, completion) string pairs with ``tokenizer(text)``, as TRL does."""
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    prompt_ids = tokenizer(list(prompts))["input_ids"]
    full_ids = tokenizer([p + c for p, c in zip(prompts, completions, strict=True)])["input_ids"]
    starts = [common_prefix(p, f) for p, f in zip(prompt_ids, full_ids, strict=True)]
    if any(start >= len(ids) for start, ids in zip(starts, full_ids, strict=True)):
        raise ValueError("a completion encodes to no token")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return EncodedPairs([list(ids) for ids in full_ids], starts, pad)


@torch.no_grad()
def encoded_log_probs(model, pairs: EncodedPairs, *, batch_size: int = 512) -> np.ndarray:
    """(N,) float64 completion log-probs of pre-encoded pairs (see :func:`encode_pairs`)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.empty(len(pairs.ids), dtype=np.float64)
    order = np.argsort(
        [len(ids) for ids in pairs.ids], kind="stable"
    )  # similar lengths batch together
    try:
        for begin in range(0, len(order), batch_size):
            rows = order[begin : begin + batch_size]
            width = max(len(pairs.ids[i]) for i in rows)
            ids = torch.full((len(rows), width), pairs.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            completion = torch.zeros((len(rows), width), dtype=torch.bool)
            for r, i in enumerate(rows):
                n = len(pairs.ids[i])
                ids[r, :n] = torch.tensor(pairs.ids[i])
                mask[r, :n] = 1
                completion[r, pairs.starts[i] : n] = True
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            log_probs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            token_log_probs = log_probs.gather(-1, ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
            token_log_probs = token_log_probs.masked_fill(~completion[:, 1:].to(device), 0.0)
            out[rows] = token_log_probs.double().sum(dim=1).cpu().numpy()
    finally:
        model.train(was_training)
    return out


def completion_log_probs(
    model,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    *,
    batch_size: int = 512,
) -> np.ndarray:
    """(N,) float64 ``Σ_t log p(completion_t | prompt, completion_<t)`` of each pair.

    Args:
        model: a causal LM (put in eval mode for the call; its mode is restored).
        tokenizer: its tokenizer; the strings are encoded with ``tokenizer(text)``.
        prompts, completions: formatted strings, one pair per row.
        batch_size: rows per forward pass.
    """
    return encoded_log_probs(
        model, encode_pairs(tokenizer, prompts, completions), batch_size=batch_size
    )
