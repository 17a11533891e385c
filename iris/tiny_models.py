"""Tiny random-initialised causal LMs and word-level tokenizers, built locally in seconds.

This module owns the stand-ins for hub checkpoints used by the tests, the CPU demo and the
CPU benchmarks: no weights or tokenizers can be downloaded on the development machines, so
the real loading code paths (``from_pretrained`` on a directory) are exercised on models
made here. Models are Llama-architecture (a Qwen2 config makes ``AutoTokenizer`` swap in
Qwen's pre-tokenizer and silently change token ids); tokenizers are word-level with a
Jinja chat template, so one word of the vocabulary is exactly one token.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<unk>", "<bos>", "<eos>", "<|user|>", "<|assistant|>")

# One template for generation and training, so both see the same prompt format.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|> ' + message['content'] + ' ' }}"
    "{% else %}{{ '<|assistant|> ' + message['content'] + ' <eos> ' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}"
)


def make_word_tokenizer(
    words: Iterable[str], *, padding_side: str = "left"
) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``words`` plus the special tokens, with a chat template.

    Whitespace separates words; unknown words map to ``<unk>``. ``padding_side`` is passed
    to the constructor (set afterwards it is not saved by ``save_pretrained``).
    """
    vocab: dict[str, int] = {}
    for token in (*SPECIAL_TOKENS, *words):
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<bos>",
        eos_token="<eos>",
        padding_side=padding_side,
        chat_template=CHAT_TEMPLATE,
    )
    return tokenizer


def make_tiny_llama(
    vocab_size: int,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 256,
    seed: int = 0,
    pad_token_id: int = 0,
    bos_token_id: int = 2,
    eos_token_id: int = 3,
) -> LlamaForCausalLM:
    """A random-initialised Llama causal LM (float32), deterministic for a given ``seed``."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    # Sampling settings belong to the caller: saved in generation_config they would
    # override the generation limits of lm-eval and of iris.generation.
    model.generation_config.do_sample = False
    model.generation_config.max_new_tokens = None
    return model


def save_tiny_model(
    directory: str | Path,
    words: Sequence[str],
    *,
    seed: int = 0,
    **model_kwargs,
) -> Path:
    """Create a tokenizer over ``words`` and a matching tiny Llama and save both to ``directory``.

    The directory then loads with ``AutoModelForCausalLM.from_pretrained`` and
    ``AutoTokenizer.from_pretrained`` exactly like a hub checkpoint.
    """
    directory = Path(directory)
    tokenizer = make_word_tokenizer(words)
    model = make_tiny_llama(
        len(tokenizer),
        seed=seed,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **model_kwargs,
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
