"""The testbed as a fine-tuning task: text format, annotated data, tokenizer, model.

Owns how the Markov target of :mod:`iris.testbed.target` becomes the inputs of the real
pipeline: a prompt ``p{k}`` is one word, a response is its symbols joined by spaces
(``"s2 s0 s3"``), the tokenizer is word-level with the tiny chat template (one symbol =
one token, the end of a response = the ``<eos>`` token), the annotated data is a JSONL
file of (prompt, response) rows sampled from the target, and the model is a tiny Llama.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iris.testbed.target import MarkovTarget, make_target
from iris.tiny_models import make_tiny_llama, make_word_tokenizer


@dataclass(frozen=True)
class TargetSpec:
    """The parameters of :func:`iris.testbed.target.make_target` (a config section)."""

    num_prompts: int = 4
    num_symbols: int = 4
    max_length: int = 6
    seed: int = 0
    concentration: float = 0.5
    mean_stop: float = 0.3

    def build(self) -> MarkovTarget:
        return make_target(
            self.num_prompts,
            self.num_symbols,
            self.max_length,
            seed=self.seed,
            concentration=self.concentration,
            mean_stop=self.mean_stop,
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> TargetSpec:
        return cls(**dict(values or {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def response_text(response: tuple[int, ...]) -> str:
    """``(2, 0, 3)`` → ``"s2 s0 s3"``."""
    return " ".join(f"s{s}" for s in response)


def parse_response(text: str, num_symbols: int) -> tuple[int, ...] | None:
    """The symbols of a response text, or None when some word is not a symbol."""
    symbols = []
    for word in text.split():
        if not (word.startswith("s") and word[1:].isdigit() and int(word[1:]) < num_symbols):
            return None
        symbols.append(int(word[1:]))
    return tuple(symbols) if symbols else None


def write_annotated(target: MarkovTarget, n: int, path: str | Path, *, seed: int) -> Path:
    """``n`` rows ``{"prompt": "p{k}", "real": response}``: prompts uniform, responses ~ p_data."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as file:
        for _ in range(n):
            k = int(rng.integers(target.num_prompts))
            row = {"prompt": f"p{k}", "real": response_text(target.sample(k, rng))}
            file.write(json.dumps(row) + "\n")
    tmp.replace(path)
    return path


def make_testbed_model(
    target: MarkovTarget,
    directory: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    seed: int = 0,
) -> Path:
    """Save a random-initialised tiny Llama and the testbed tokenizer to ``directory``."""
    tokenizer = make_word_tokenizer(target.vocabulary)
    model = make_tiny_llama(
        len(tokenizer),
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        max_position_embeddings=4 * (target.max_length + 8),
        seed=seed,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
