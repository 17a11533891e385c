"""The ``chat`` evaluator: held-out conversations scored on a tiny model, checked by hand.

The tiny word-level tokenizer makes every rendering checkable by eye: one word is one
token, the chat template writes ``<|user|> … <|assistant|> `` and ends a response with
`` <eos>``. The per-token log-likelihood and lm-eval's rolling metrics are recomputed from
the model's logits in float64, token by token, one conversation at a time (no batching,
no iris.scoring); the generation statistics are pure functions checked on hand-made id
lists; and the loop writes the evaluator's summary in a one-iteration run.
"""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace

import pytest
import torch

from iris.config import ConfigError
from iris.evaluation import ChatEvaluator, EvaluationError, make_evaluator
from iris.evaluation.chat import (
    GENERATIONS_FILE,
    HELDOUT_RECORDS,
    distinct_n,
    find_heldout,
    generation_stats,
    ratio_standard_error,
    repetition_rate,
    split_at_stop,
)
from iris.runs import RunDir, read_jsonl
from iris.tiny_models import save_tiny_model

WORDS = [f"w{i}" for i in range(24)]
SYSTEM_PROMPT = [
    {"role": "system", "content": "w7 w6"},
    {"role": "user", "content": "w8 w9"},
    {"role": "assistant", "content": "w10"},
    {"role": "user", "content": "w11"},
]
RECORDS = [
    {"id": "a", "prompt": "w1 w2", "real": "w3 w4 w5", "source_index": 0},
    {"id": "b", "prompt": SYSTEM_PROMPT, "real": "w12 w13", "source_index": 1},
    {"id": "c", "prompt": "w0", "real": "w5 w5 w5 w5 w5 w6", "source_index": 2},
]
# The same conversations as the tiny chat template renders them (a system message is
# rendered like an assistant turn by this template), response ending with the end of turn.
RENDERED = [
    ("<|user|> w1 w2 <|assistant|>", "w3 w4 w5 <eos>"),
    (
        "<|assistant|> w7 w6 <eos> <|user|> w8 w9 <|assistant|> w10 <eos> <|user|> w11 <|assistant|>",
        "w12 w13 <eos>",
    ),
    ("<|user|> w0 <|assistant|>", "w5 w5 w5 w5 w5 w6 <eos>"),
]


# --------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------


def test_split_at_stop_cuts_at_the_first_stop_token():
    assert split_at_stop([4, 5, 3, 9, 3], [3]) == ([4, 5], True, 3)
    assert split_at_stop([4, 5, 9], [3, 8]) == ([4, 5, 9], False, 3)
    assert split_at_stop([8, 0, 0], [3, 8]) == ([], True, 1)


def test_distinct_bigrams_are_pooled_without_crossing_lists():
    assert distinct_n([[1, 2, 3, 4]], 2) == 1.0
    assert distinct_n([[1, 1, 1, 1]], 2) == pytest.approx(1 / 3)
    # (1,2) (2,3) | (3,4) (4,1) (1,2): 4 distinct of 5; (3,3) across the lists is not a bigram
    assert distinct_n([[1, 2, 3], [3, 4, 1, 2]], 2) == pytest.approx(4 / 5)
    assert distinct_n([[1, 2, 3], [3, 4, 1, 2]], 1) == pytest.approx(4 / 7)
    assert math.isnan(distinct_n([[5], []], 2))


def test_repetition_is_the_fraction_of_repeated_four_grams():
    assert repetition_rate([1, 2, 3, 4, 5, 6]) == 0.0
    assert repetition_rate([7] * 10) == pytest.approx(1 - 1 / 7)
    assert repetition_rate([1, 2, 3, 1, 2, 3, 1, 2, 3]) == pytest.approx(1 - 3 / 6)
    assert repetition_rate([1, 2, 3]) == 0.0 and repetition_rate([]) == 0.0


def test_generation_stats_of_hand_made_generations():
    eos, pad = 3, 0
    sequences = [
        [5, 6, 5, 6, 5, 6, eos, pad],  # ended: 7 tokens; content 5 6 5 6 5 6
        [7, 8, 9, 10, 11, 12, 13, 14],  # cut at the limit: 8 tokens
        [eos, pad, pad, pad, pad, pad, pad, pad],  # ended at once: 1 token, empty content
        [9, 9, eos, 9, 9, 9, 9, 9],  # ended: what follows the stop token is not counted
    ]
    stats = generation_stats(sequences, [eos])
    assert stats["gen_length"] == pytest.approx((7 + 8 + 1 + 3) / 4)
    assert stats["gen_eos_fraction"] == pytest.approx(3 / 4)
    # bigrams: (5,6) (6,5) ×5 → 2 distinct; 7 distinct in the second; (9,9) → 10 distinct of 13
    assert stats["gen_distinct2"] == pytest.approx(10 / 13)
    # 4-grams: first 3 of which 2 unique (1/3 repeated); second 5 unique; the others < 4 tokens
    assert stats["gen_repetition"] == pytest.approx((1 / 3 + 0 + 0 + 0) / 4)
    assert generation_stats([[1, 2]], [1, 3])["gen_eos_fraction"] == 1.0
    assert all(math.isnan(v) for v in generation_stats([], [eos]).values())


def test_the_docstring_examples_hold():
    import doctest

    import iris.evaluation.chat

    assert doctest.testmod(iris.evaluation.chat).failed == 0


def test_ratio_standard_error_of_per_token_means():
    assert ratio_standard_error([-3.0], [3]) != ratio_standard_error([-3.0], [3])  # NaN
    # equal lengths: the usual standard error of the per-response means
    means = [-1.0, -2.0, -4.0]
    se = ratio_standard_error([2 * m for m in means], [2, 2, 2])
    mean = sum(means) / 3
    assert se == pytest.approx(math.sqrt(sum((m - mean) ** 2 for m in means) / 2 / 3))
    assert ratio_standard_error([-2.0, -4.0], [1, 2]) == 0.0  # the same rate per token


# --------------------------------------------------------------------------------------
# The evaluator on a tiny model, checked against float64 computations by hand
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("chat")
    model_dir = save_tiny_model(root / "model", WORDS, seed=1)
    run = RunDir(root / "run")
    run.data_dir.mkdir(parents=True)
    (run.data_dir / HELDOUT_RECORDS).write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    evaluator = make_evaluator({"kind": "chat", "max_new_tokens": 6, "batch_size": 2})
    out = run.eval_dir(0)
    flat = evaluator.evaluate(model_dir, iteration=0, output_dir=out)  # loads model_dir
    return SimpleNamespace(
        root=root, model_dir=model_dir, model=model, tokenizer=tokenizer, run=run, out=out,
        flat=flat, evaluator=evaluator,
    )  # fmt: skip


def _ids(tokenizer, text: str) -> list[int]:
    vocab = tokenizer.get_vocab()
    return [vocab[word] for word in text.split()]


@torch.no_grad()
def _token_log_probs(model, ids: list[int]) -> list[float]:
    """log p(ids[t] | ids[:t]) for t ≥ 1, in float64, one unpadded sequence."""
    logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    return [float(log_probs[t - 1, ids[t]]) for t in range(1, len(ids))]


def _by_hand(tiny, cap: int | None = None) -> tuple[list[float], list[int]]:
    sums, counts = [], []
    for prompt, response in RENDERED:
        prompt_ids, response_ids = _ids(tiny.tokenizer, prompt), _ids(tiny.tokenizer, response)
        response_ids = response_ids[:cap] if cap is not None else response_ids
        token_lps = _token_log_probs(tiny.model, prompt_ids + response_ids)
        sums.append(math.fsum(token_lps[len(prompt_ids) - 1 :]))
        counts.append(len(response_ids))
    return sums, counts


def test_the_tiny_template_renders_the_conversations_as_written_here(tiny):
    """The hand computations below rest on this rendering (training's: format_prompts +
    format_completion) and on the tokenizer encoding it word by word, without a BOS."""
    from iris.data import format_completion, format_prompts

    prompts = format_prompts(tiny.tokenizer, [r["prompt"] for r in RECORDS])
    for record, prompt, (want_prompt, want_response) in zip(
        RECORDS, prompts, RENDERED, strict=True
    ):
        completion = format_completion(tiny.tokenizer, record["prompt"], record["real"])
        assert prompt.split() == want_prompt.split() and completion.split() == want_response.split()
        ids = tiny.tokenizer(prompt + completion)["input_ids"]
        assert ids == _ids(tiny.tokenizer, want_prompt + " " + want_response)


def test_real_logprob_per_token_equals_a_float64_computation_by_hand(tiny):
    sums, counts = _by_hand(tiny)
    flat = tiny.flat
    assert flat["chat/real_logprob_per_token"] == pytest.approx(sum(sums) / sum(counts), rel=1e-6)
    assert flat["chat/real_nll_per_token_se"] == pytest.approx(
        ratio_standard_error(sums, counts), rel=1e-4
    )
    summary = json.loads((tiny.out / "chat.summary.json").read_text())
    assert summary["iteration"] == 0 and summary["n_heldout"] == 3
    assert summary["real"]["response_tokens"] == sum(counts) == 14
    assert summary["flat"] == {k: v for k, v in flat.items() if k != "average"} | {
        "average": summary["flat"]["average"]
    }
    assert math.isnan(flat["average"]) and summary["settings"]["max_new_tokens"] == 6
    assert set(flat) == tiny.evaluator.metric_names() | {"average"}


def test_responses_are_capped_at_max_response_tokens_and_limit_takes_the_first_records(tiny):
    """max_response_tokens: 2 scores each response's first two tokens (the end-of-turn
    token of a longer one is cut); limit: 2 uses the first two records."""
    evaluator = ChatEvaluator(max_response_tokens=2, lm_eval=False, limit=2, max_new_tokens=2)
    out = tiny.run.iteration_dir(1) / "capped"  # any folder of the run finds its data
    flat = evaluator.evaluate(
        tiny.model_dir, iteration=0, output_dir=out, model=tiny.model, tokenizer=tiny.tokenizer
    )
    sums, counts = _by_hand(tiny, cap=2)
    assert counts == [2, 2, 2]
    assert flat["chat/real_logprob_per_token"] == pytest.approx(sum(sums[:2]) / 4, rel=1e-6)
    summary = json.loads((out / "chat.summary.json").read_text())
    assert summary["n_heldout"] == 2 and summary["real"]["capped_responses"] == 2
    assert not any(key.startswith("chat_heldout/") for key in flat)
    assert summary["heldout"]["path"] == str(tiny.run.data_dir / HELDOUT_RECORDS)


def test_generations_file_agrees_with_the_generation_metrics(tiny):
    rows = read_jsonl(tiny.out / GENERATIONS_FILE)
    assert [row["id"] for row in rows] == ["a", "b", "c"]
    assert {"id", "prompt", "text", "truncated", "n_tokens"} <= set(rows[0])
    assert rows[0]["prompt"] == "<|user|> w1 w2 <|assistant|> "
    assert all(1 <= row["n_tokens"] <= 6 for row in rows)
    flat = tiny.flat
    assert flat["chat/gen_length"] == pytest.approx(sum(r["n_tokens"] for r in rows) / 3)
    assert flat["chat/gen_eos_fraction"] == pytest.approx(1 - sum(r["truncated"] for r in rows) / 3)
    for key in ("chat/gen_distinct2", "chat/gen_repetition"):
        assert 0 <= flat[key] <= 1


def test_lm_eval_rolling_metrics_equal_the_rolling_log_likelihood_by_hand(tiny):
    """lm-eval scores each whole rendered conversation after its prefix token (<bos>):
    bits per byte = −Σ log p / (ln 2 · Σ bytes), word perplexity = exp(−Σ log p / Σ words)."""
    bos = tiny.tokenizer.bos_token_id
    total, words, nbytes = 0.0, 0, 0
    for prompt, response in RENDERED:
        text = f"{prompt} {response}"  # the rendering joins them with one space here
        total += math.fsum(_token_log_probs(tiny.model, [bos, *_ids(tiny.tokenizer, text)]))
        words += len(text.split())
        nbytes += len(text.encode("utf-8"))
    flat = tiny.flat
    assert math.isfinite(flat["chat_heldout/bits_per_byte"])
    assert flat["chat_heldout/bits_per_byte"] == pytest.approx(
        -total / nbytes / math.log(2), rel=1e-5
    )
    assert flat["chat_heldout/byte_perplexity"] == pytest.approx(
        math.exp(-total / nbytes), rel=1e-5
    )
    assert flat["chat_heldout/word_perplexity"] == pytest.approx(math.exp(-total / words), rel=1e-5)
    task = tiny.out / "task"
    assert (task / "chat_heldout.yaml").is_file() and (task / "chat_heldout.jsonl").is_file()
    assert "loglikelihood_rolling" in (task / "chat_heldout.yaml").read_text()


# --------------------------------------------------------------------------------------
# Configuration and the held-out file
# --------------------------------------------------------------------------------------


def test_config_keys_are_checked_when_the_evaluator_is_built():
    evaluator = make_evaluator({"kind": "chat"})
    assert isinstance(evaluator, ChatEvaluator) and evaluator.name == "chat"
    assert (evaluator.max_response_tokens, evaluator.max_new_tokens) == (256, 128)
    assert (evaluator.temperature, evaluator.batch_size, evaluator.lm_eval) == (0.0, 16, True)
    every_2 = make_evaluator({"kind": "chat", "every": 2})
    assert [t for t in range(5) if every_2.should_run(t, 5)] == [1, 3, 4]
    with pytest.raises(ConfigError, match="unknown key 'max_tokens'"):
        make_evaluator({"kind": "chat", "max_tokens": 3})
    with pytest.raises(ConfigError, match="temperature must be >= 0"):
        make_evaluator({"kind": "chat", "temperature": -1})
    with pytest.raises(ConfigError, match="max_response_tokens must be >= 1"):
        make_evaluator({"kind": "chat", "max_response_tokens": 0})
    no_lm_eval = make_evaluator({"kind": "chat", "lm_eval": False}).metric_names()
    names = "real_logprob_per_token real_nll_per_token_se gen_length gen_eos_fraction"
    assert no_lm_eval == {f"chat/{n}" for n in f"{names} gen_distinct2 gen_repetition".split()}


def test_the_heldout_file_is_the_runs_or_the_configured_one(tmp_path):
    from iris import selfplay

    assert HELDOUT_RECORDS == selfplay.HELDOUT_RECORDS  # one name for the one file
    run = RunDir(tmp_path / "run")
    with pytest.raises(EvaluationError, match=r"evaluation\.heldout"):
        find_heldout(run.eval_dir(0))
    run.data_dir.mkdir(parents=True)
    (run.data_dir / HELDOUT_RECORDS).write_text("")
    assert find_heldout(run.eval_dir(2)) == run.data_dir / HELDOUT_RECORDS
    assert find_heldout(run.iteration_dir(1) / "entering_eval") == run.data_dir / HELDOUT_RECORDS
    with pytest.raises(EvaluationError, match="holds no records"):
        ChatEvaluator(lm_eval=False).evaluate(tmp_path, iteration=0, output_dir=run.eval_dir(0))
    with pytest.raises(EvaluationError, match="is not a file"):
        ChatEvaluator(heldout=str(tmp_path / "nope.jsonl")).heldout_path(run.eval_dir(0))


# --------------------------------------------------------------------------------------
# In the self-play loop
# --------------------------------------------------------------------------------------


def test_one_selfplay_iteration_writes_the_chat_summary(tmp_path):
    from iris.config import SelfPlayConfig, from_dict
    from iris.selfplay import run_selfplay

    save_tiny_model(tmp_path / "model", WORDS, seed=0)
    rng = random.Random(0)
    with (tmp_path / "data.jsonl").open("w") as file:
        for i in range(12):
            prompt = f"{WORDS[i % 8]} {WORDS[i // 8]} " + rng.choice(WORDS[:8])
            real = " ".join(rng.choice(WORDS[8:]) for _ in range(rng.randint(2, 5)))
            file.write(json.dumps({"prompt": prompt, "real": real}) + "\n")
    config = from_dict(
        SelfPlayConfig,
        {
            "model": {"name_or_path": str(tmp_path / "model")},
            "data": {"source": str(tmp_path / "data.jsonl"), "n_train": 8, "n_heldout": 4},
            "generation": {"max_new_tokens": 4, "batch_size": 4, "shard_size": 8},
            "iterations": 1,
            "seed": 3,
            "output_dir": str(tmp_path / "run"),
            "training": {
                "loss": "iris",
                "beta": 0.5,
                "per_device_train_batch_size": 4,
                "num_train_epochs": 1,
                "learning_rate": 1e-3,
                "max_length": 64,
                "report_to": [],
                "disable_tqdm": True,
            },
            "evaluation": {"kind": "chat", "max_new_tokens": 8},
        },
    )
    run = run_selfplay(config, evaluator=make_evaluator(config.evaluation))
    summary = json.loads((run.eval_dir(0) / "chat.summary.json").read_text())
    assert summary["iteration"] == 0 and summary["n_heldout"] == 4
    flat = summary["flat"]
    assert set(flat) == make_evaluator(config.evaluation).metric_names() | {"average"}
    assert all(math.isfinite(v) for k, v in flat.items() if k != "average"), flat
    assert len(read_jsonl(run.eval_dir(0) / GENERATIONS_FILE)) == 4
    assert run.stage_done("eval", 0)
