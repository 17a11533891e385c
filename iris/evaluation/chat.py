"""A chat model on the run's held-out conversations: the ``chat`` evaluator kind.

:class:`ChatEvaluator`, registered as evaluator kind ``"chat"`` (``evaluation: {kind:
chat, max_new_tokens: 128, ...}``), scores an iteration's model on the held-out records
the data stage wrote (``<run>/data/heldout.jsonl``, or the file of the ``heldout`` key):

* ``chat/real_logprob_per_token``: the annotated responses' log-likelihood per token,
  ``Σ_i log p_θ(y_i | x_i) / Σ_i |y_i|`` (token-weighted over the whole set), with prompt
  and response rendered exactly as training renders them (:func:`iris.data.format_prompts`
  + :func:`iris.data.format_completion`, end-of-turn token included, split where the
  tokenised prompt and prompt + response diverge, as in TRL and :mod:`iris.scoring`); each
  response is cut to its first ``max_response_tokens`` tokens. ``chat/real_nll_per_token_se``
  is its standard error with the responses as the independent units (the delta-method
  error of a ratio of sums, :func:`ratio_standard_error`);
* generation statistics of one response per held-out prompt, sampled by the run's own
  generation path (:class:`iris.generation.HFBackend`, greedy by default) and written to
  ``chat.generations.jsonl``: ``chat/gen_length`` (mean generated tokens, the end-of-turn
  token included when one was generated), ``chat/gen_eos_fraction`` (the fraction that
  ended their turn rather than hitting ``max_new_tokens``), ``chat/gen_distinct2``
  (distinct bigrams / bigrams, pooled over all responses) and ``chat/gen_repetition``
  (mean over responses of 1 − unique 4-grams / 4-grams) — the pure functions
  :func:`generation_stats`, :func:`distinct_n` and :func:`repetition_rate`;
* through lm-eval (``lm_eval: true``), a local task written to ``task/``: each held-out
  conversation rendered by the chat template (prompt + annotated response) scored with
  ``output_type: loglikelihood_rolling``, reporting lm-eval's ``word_perplexity``,
  ``byte_perplexity`` and ``bits_per_byte`` as ``chat_heldout/<metric>``. They cover the
  whole rendered text — prompt, response and template markup (lm-eval counts words by
  whitespace and bytes in UTF-8 over it) — so they are not the response-only measure above.
  (lm-eval's ``perplexity`` over ``loglikelihood`` requests is exp of whole-answer
  log-likelihoods, not per token; it is not used.)

``average`` is NaN (no benchmark average). Files in ``output_dir``: ``chat.summary.json``
(``flat``, ``iteration``, ``n_heldout``, ``settings``, details and timings),
``chat.generations.jsonl``, ``task/`` and lm-eval's ``chat_heldout.*`` files
(:func:`iris.evaluation.harness.evaluate_suite`). Everything is deterministic for a given
model and ``seed``; the model is the in-memory one the loop passes (as it is), else
``model_dir`` loaded in ``dtype`` (float32) on ``device`` (CUDA when available, else CPU).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from iris.config import from_dict
from iris.data import Record, format_completion, format_prompts, read_records
from iris.evaluation.base import EvalSettings, EvaluationError, register_evaluator, runs_at, setting
from iris.generation import Generation, HFBackend, SamplingParams
from iris.runs import HELDOUT_FILE as HELDOUT_RECORDS
from iris.runs import RunDir, atomic_write_json, atomic_write_jsonl, atomic_write_text, sha256_file

SUMMARY_NAME = "chat"
TASK_NAME = "chat_heldout"
GENERATIONS_FILE = f"{SUMMARY_NAME}.generations.jsonl"
TASK_DIR = "task"
LM_EVAL_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")
LM_EVAL_AGGREGATIONS = ("weighted_perplexity", "weighted_perplexity", "bits_per_byte")
CHAT_METRICS = (
    "real_logprob_per_token",
    "real_nll_per_token_se",
    "gen_length",
    "gen_eos_fraction",
    "gen_distinct2",
    "gen_repetition",
)


# --------------------------------------------------------------------------------------
# Generation statistics: pure functions of token id lists
# --------------------------------------------------------------------------------------


def split_at_stop(ids: Sequence[int], stop_ids: Sequence[int]) -> tuple[list[int], bool, int]:
    """``(content ids before the first stop token, ended?, generated length)``; the length
    counts the stop token when there is one (what a backend generated, up to it).

    >>> split_at_stop([5, 6, 3, 0, 0], [3])
    ([5, 6], True, 3)
    >>> split_at_stop([5, 6, 7], [3])
    ([5, 6, 7], False, 3)
    """
    stops = set(stop_ids)
    for index, token in enumerate(ids):
        if token in stops:
            return list(ids[:index]), True, index + 1
    return list(ids), False, len(ids)


def _ngrams(ids: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def distinct_n(token_lists: Sequence[Sequence[int]], n: int = 2) -> float:
    """Distinct n-grams / n-grams, pooled over all lists (n-grams never span two lists);
    NaN when no list has n tokens.

    >>> distinct_n([[1, 2, 1, 2], [1, 2]])  # bigrams (1,2) (2,1) (1,2) | (1,2)
    0.5
    """
    grams = [gram for ids in token_lists for gram in _ngrams(ids, n)]
    return len(set(grams)) / len(grams) if grams else math.nan


def repetition_rate(ids: Sequence[int], n: int = 4) -> float:
    """1 − unique n-grams / n-grams within one list; 0 for a list shorter than n tokens.

    >>> repetition_rate([1, 2, 3, 1, 2, 3, 1])  # 4 four-grams, 3 unique
    0.25
    """
    grams = _ngrams(ids, n)
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def generation_stats(
    sequences: Sequence[Sequence[int]], stop_ids: Sequence[int]
) -> dict[str, float]:
    """The ``gen_*`` metrics of generated token id lists (as sampled: each cut at its first
    stop token, whatever padding follows it). Content tokens (before the stop token) make
    the bigrams and 4-grams; the length counts the stop token when one was generated.
    NaN for an empty list.

    >>> stats = generation_stats([[5, 6, 5, 6, 3, 0], [7, 7, 7, 7, 7, 7]], stop_ids=[3])
    >>> {name: round(value, 4) for name, value in stats.items()}
    {'gen_length': 5.5, 'gen_eos_fraction': 0.5, 'gen_distinct2': 0.375, 'gen_repetition': 0.3333}
    """
    if not sequences:
        return {name: math.nan for name in CHAT_METRICS if name.startswith("gen_")}
    split = [split_at_stop(ids, stop_ids) for ids in sequences]
    contents = [content for content, _, _ in split]
    return {
        "gen_length": math.fsum(length for _, _, length in split) / len(split),
        "gen_eos_fraction": sum(ended for _, ended, _ in split) / len(split),
        "gen_distinct2": distinct_n(contents, 2),
        "gen_repetition": math.fsum(repetition_rate(c, 4) for c in contents) / len(contents),
    }


# --------------------------------------------------------------------------------------
# Log-likelihood of the annotated responses
# --------------------------------------------------------------------------------------


def ratio_standard_error(sums: Sequence[float], counts: Sequence[int]) -> float:
    """Standard error of ``R = Σ s_i / Σ n_i`` with the pairs ``(s_i, n_i)`` as independent
    units (the delta method for a ratio of means): ``sqrt(Σ (s_i − R n_i)² / (m (m − 1))) / n̄``;
    NaN for fewer than two units.

    >>> ratio_standard_error([-2.0, -6.0], [2, 2])  # per-unit means -1 and -3
    1.0
    """
    m = len(sums)
    if m < 2:
        return math.nan
    ratio = math.fsum(sums) / sum(counts)
    squares = math.fsum((s - ratio * n) ** 2 for s, n in zip(sums, counts, strict=True))
    return math.sqrt(squares / (m * (m - 1))) / (sum(counts) / m)


def response_log_likelihoods(
    model: Any,
    tokenizer: Any,
    records: Sequence[Record],
    *,
    max_response_tokens: int,
    batch_size: int,
) -> tuple[list[float], list[int], list[bool]]:
    """Per record: ``(Σ log p_θ over the response's tokens, their number, capped?)``, the
    response rendered and tokenised as training does and cut to ``max_response_tokens``."""
    from iris.scoring import EncodedPairs, encode_pairs, encoded_log_probs

    prompts = [record["prompt"] for record in records]
    completions = [
        format_completion(tokenizer, record["prompt"], record["real"], terminated=True)
        for record in records
    ]
    pairs = encode_pairs(tokenizer, format_prompts(tokenizer, prompts), completions)
    ids = [
        row[: start + max_response_tokens]
        for row, start in zip(pairs.ids, pairs.starts, strict=True)
    ]
    counts = [len(row) - start for row, start in zip(ids, pairs.starts, strict=True)]
    capped = [len(row) > len(cut) for row, cut in zip(pairs.ids, ids, strict=True)]
    cut = EncodedPairs(ids, pairs.starts, pairs.pad_token_id)
    sums = encoded_log_probs(model, cut, batch_size=batch_size)
    return [float(s) for s in sums], counts, capped


def conversation_texts(tokenizer: Any, records: Sequence[Record]) -> list[str]:
    """Each record as the chat template renders it in training: prompt + annotated response
    (ending with the end-of-turn token)."""
    prompts = format_prompts(tokenizer, [record["prompt"] for record in records])
    return [
        prompt + format_completion(tokenizer, record["prompt"], record["real"], terminated=True)
        for prompt, record in zip(prompts, records, strict=True)
    ]


def write_rolling_task(directory: Path, ids: Sequence[str], texts: Sequence[str]) -> Path:
    """Write the lm-eval task scoring ``texts`` with ``loglikelihood_rolling`` into
    ``directory`` (its JSONL data file and task YAML, absolute ``data_files``); returns the YAML."""
    directory = Path(directory).absolute()
    data = atomic_write_jsonl(
        directory / f"{TASK_NAME}.jsonl",
        [{"id": i, "text": text} for i, text in zip(ids, texts, strict=True)],
    )
    config = {
        "task": TASK_NAME,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": "text",  # a column name: the text as it is, no Jinja rendering
        "metric_list": [
            {"metric": metric, "aggregation": aggregation, "higher_is_better": False}
            for metric, aggregation in zip(LM_EVAL_METRICS, LM_EVAL_AGGREGATIONS, strict=True)
        ],
        "metadata": {"version": 1.0},
    }
    return atomic_write_text(directory / f"{TASK_NAME}.yaml", yaml.safe_dump(config))


# --------------------------------------------------------------------------------------
# Generation through the run's backend, keeping the token ids
# --------------------------------------------------------------------------------------


class _RecordingHFBackend(HFBackend):
    """The run's HF generation, also keeping each prompt's generated ids in prompt order
    (:class:`~iris.generation.Generation` keeps the decoded text; the statistics need ids)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sampled: list[list[int]] = []

    def _sample(
        self, batch: list[list[int]], params: SamplingParams, seeds: list[int]
    ) -> list[list[int]]:
        sequences = super()._sample(batch, params, seeds)
        self.sampled.extend(list(ids) for ids in sequences)
        return sequences


def generate_responses(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    params: SamplingParams,
    *,
    seed: int,
    batch_size: int,
) -> tuple[list[Generation], list[list[int]], list[int]]:
    """``(generations, generated ids per prompt, stop token ids)`` for formatted prompts."""
    backend = _RecordingHFBackend(model, tokenizer, batch_size=batch_size)
    generations = backend.generate(list(prompts), params, seed)
    return generations, backend.sampled, list(backend.stop_ids)


# --------------------------------------------------------------------------------------
# The evaluator
# --------------------------------------------------------------------------------------


def find_heldout(output_dir: Path) -> Path:
    """The held-out records of the run holding ``output_dir`` (``<run>/data/heldout.jsonl``
    of the nearest enclosing directory that has one)."""
    output_dir = Path(output_dir).absolute()
    for directory in (output_dir, *output_dir.parents):
        candidate = RunDir(directory).heldout_path
        if candidate.is_file():
            return candidate
    raise EvaluationError(
        f"chat evaluation: no data/{HELDOUT_RECORDS} in any directory holding {output_dir}: "
        "evaluate inside a run whose data stage wrote held-out records (data.n_heldout > 0), "
        "or give evaluation.heldout: PATH"
    )


@register_evaluator("chat")
@dataclasses.dataclass(frozen=True)
class ChatEvaluator:
    """Scores an iteration's model on the held-out conversations (see the module docstring)."""

    heldout: str | None = setting(
        None, "Held-out records JSONL (default: <run>/data/heldout.jsonl of the run evaluated)."
    )
    every: int = setting(1, "Evaluate after every k-th iteration (and the last).")
    final: bool = setting(True, "Always evaluate after the last iteration.")
    limit: int | None = setting(None, "Use only the first N held-out records (all metrics).")
    max_response_tokens: int = setting(
        256, "Annotated responses are scored on their first N tokens."
    )
    max_new_tokens: int = setting(128, "Token limit of each generated response.")
    temperature: float = setting(0.0, "Sampling temperature of the generations (0: greedy).")
    top_p: float = setting(1.0, "Nucleus sampling threshold (1: off).")
    top_k: int = setting(0, "Top-k sampling (0: off).")
    seed: int = setting(0, "Seed of the generations (prompt i samples from its own seed).")
    batch_size: int = setting(16, "Rows per forward pass / generation batch / lm-eval batch.")
    lm_eval: bool = setting(True, "Also score the conversations with lm-eval (rolling loglik).")
    dtype: str = setting("float32", "dtype of a model loaded from model_dir.")
    device: str | None = setting(
        None, "Device of a model loaded from model_dir (default: cuda when available, else cpu)."
    )

    name = SUMMARY_NAME

    def __post_init__(self) -> None:
        for key in ("every", "max_response_tokens", "batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1, got {self.limit}")
        _ = self.sampling  # validates temperature, top_p, top_k and max_new_tokens
        if self.lm_eval and importlib.util.find_spec("lm_eval") is None:
            raise ValueError(
                "lm_eval: true needs lm-eval: pip install 'iris-selfplay[eval]' "
                "(or set lm_eval: false)"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ChatEvaluator:
        """Build from the ``evaluation`` mapping (without ``kind``); unknown keys and bad values
        raise :class:`~iris.config.ConfigError`."""
        return from_dict(cls, config, source="evaluation config")

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_new_tokens=self.max_new_tokens,
        )

    def metric_names(self) -> frozenset[str]:
        """The flat keys :meth:`evaluate` reports as numbers (``average`` is NaN)."""
        names = [f"{SUMMARY_NAME}/{name}" for name in CHAT_METRICS]
        names += [f"{TASK_NAME}/{name}" for name in LM_EVAL_METRICS] if self.lm_eval else []
        return frozenset(names)

    def should_run(self, iteration: int, num_iterations: int) -> bool:
        return runs_at(iteration, num_iterations, every=self.every, final=self.final)

    def heldout_path(self, output_dir: Path) -> Path:
        if self.heldout is not None:
            path = Path(self.heldout).expanduser()
            if not path.is_file():
                raise EvaluationError(f"evaluation.heldout: {path} is not a file")
            return path
        return find_heldout(output_dir)

    def _model(self, model_dir: Path, model: Any, tokenizer: Any) -> tuple[Any, Any]:
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if model is None:
            import torch
            from transformers import AutoModelForCausalLM

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            loaded = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.dtype)
            model = loaded.to(device).eval()
        return model, tokenizer

    def evaluate(
        self,
        model_dir: Path,
        *,
        iteration: int,
        output_dir: Path,
        model: Any = None,
        tokenizer: Any = None,
    ) -> dict[str, float]:
        """Score the in-memory ``model`` (else ``model_dir``) on the held-out records; write
        the files of the module docstring into ``output_dir``; return the flat metrics."""
        output_dir = Path(output_dir)
        heldout = self.heldout_path(output_dir)
        records = read_records(heldout)[: self.limit]
        if not records:
            raise EvaluationError(
                f"chat evaluation: {heldout} holds no records (set data.n_heldout > 0)"
            )
        model, tokenizer = self._model(Path(model_dir), model, tokenizer)
        seconds: dict[str, float] = {}

        start = time.perf_counter()
        sums, counts, capped = response_log_likelihoods(
            model,
            tokenizer,
            records,
            max_response_tokens=self.max_response_tokens,
            batch_size=self.batch_size,
        )
        seconds["real_logprob"] = time.perf_counter() - start
        flat = {
            f"{SUMMARY_NAME}/real_logprob_per_token": math.fsum(sums) / sum(counts),
            f"{SUMMARY_NAME}/real_nll_per_token_se": ratio_standard_error(sums, counts),
        }

        start = time.perf_counter()
        prompts = format_prompts(tokenizer, [record["prompt"] for record in records])
        generations, sampled, stop_ids = generate_responses(
            model, tokenizer, prompts, self.sampling, seed=self.seed, batch_size=self.batch_size
        )
        stats = generation_stats(sampled, stop_ids)
        flat.update({f"{SUMMARY_NAME}/{name}": value for name, value in stats.items()})
        atomic_write_jsonl(
            output_dir / GENERATIONS_FILE,
            [
                {
                    "id": record["id"],
                    "prompt": prompt,
                    "text": generation.text,
                    "truncated": generation.truncated,
                    "n_tokens": generation.num_tokens,
                }
                for record, prompt, generation in zip(records, prompts, generations, strict=True)
            ],
        )
        seconds["generation"] = time.perf_counter() - start

        lm_eval_summary = None
        if self.lm_eval:
            start = time.perf_counter()
            flat.update(self._lm_eval(model, tokenizer, records, output_dir, iteration, model_dir))
            lm_eval_summary = f"{TASK_NAME}.summary.json"
            seconds["lm_eval"] = time.perf_counter() - start

        flat = dict(sorted(flat.items()))
        flat["average"] = math.nan  # held-out measures, no benchmark average
        parameter = next(model.parameters())
        atomic_write_json(
            output_dir / f"{SUMMARY_NAME}.summary.json",
            {
                "suite": SUMMARY_NAME,
                "iteration": iteration,
                "n_heldout": len(records),
                "heldout": {"path": str(heldout.absolute()), "sha256": sha256_file(heldout)},
                "settings": dataclasses.asdict(self),
                "model": {
                    "model_dir": str(model_dir),
                    "dtype": str(parameter.dtype).removeprefix("torch."),
                    "device": str(parameter.device),
                },
                "real": {
                    "response_tokens": sum(counts),
                    "capped_responses": sum(capped),
                    "logprob_sum": math.fsum(sums),
                    # per record, for paired comparisons of two models on the same records
                    "records": [
                        {"id": record["id"], "logprob_sum": value, "tokens": count}
                        for record, value, count in zip(records, sums, counts, strict=True)
                    ],
                },
                "generation": {
                    "sampling": self.sampling.to_dict(),
                    "stop_token_ids": stop_ids,
                    "truncated": sum(g.truncated for g in generations),
                    "file": GENERATIONS_FILE,
                },
                "lm_eval_summary": lm_eval_summary,
                "wall_time_s": {key: round(value, 3) for key, value in seconds.items()},
                "average": math.nan,
                "flat": flat,
            },
        )
        return flat

    def _lm_eval(
        self,
        model: Any,
        tokenizer: Any,
        records: Sequence[Record],
        output_dir: Path,
        iteration: int,
        model_dir: Path,
    ) -> dict[str, float]:
        """lm-eval's rolling log-likelihood metrics of the rendered conversations."""
        from iris.evaluation.harness import evaluate_suite
        from iris.evaluation.suite import Suite, TaskSpec

        task_dir = (output_dir / TASK_DIR).absolute()
        texts = conversation_texts(tokenizer, records)
        write_rolling_task(task_dir, [record["id"] for record in records], texts)
        suite = Suite(
            name=TASK_NAME,
            tasks=(TaskSpec(task=TASK_NAME, metric=list(LM_EVAL_METRICS)),),
            include_path=(str(task_dir),),
            include_defaults=False,
        )
        result = evaluate_suite(
            suite,
            model,
            output_dir=output_dir,
            tokenizer=tokenizer,
            settings=EvalSettings(batch_size=self.batch_size, bootstrap_iters=0),
            name=TASK_NAME,
            model_dir=model_dir,
            extra_provenance={"iteration": iteration, "model_dir": str(model_dir)},
        )
        if result is None:  # not the main process of a distributed lm-eval run
            return {}
        metrics = result.summary["tasks"][TASK_NAME]["metrics"]
        return {f"{TASK_NAME}/{name}": metrics[name]["value"] for name in LM_EVAL_METRICS}
