"""Data-parallel generation: 2 engine processes on CPU (HF backend) give the 1-engine file.

``generate_to_file(spec, ..., engines=N)`` starts N processes that each build the backend
from a :class:`BackendSpec` and write the shards ``k ≡ rank (mod N)``; the merge is the one
of a single engine. The file must be byte-identical for N = 1 and 2 and any shard size,
and a SIGKILL of the generating process (its engines die with it) must resume to the same
file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from iris.data import format_prompts
from iris.generation import BackendSpec, SamplingParams, generate_to_file, meta_path, shard_dir
from iris.runs import read_json
from iris.tiny_models import make_word_tokenizer, save_tiny_model

WORDS = [f"w{i}" for i in range(40)]
SAMPLE = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(
        tmp_path_factory.mktemp("engines") / "model", WORDS, hidden_size=32, num_heads=2
    )


def make_items(n):
    tokenizer = make_word_tokenizer(WORDS)
    texts = [" ".join(WORDS[(7 * i + j) % 40] for j in range(1 + i % 5)) for i in range(n)]
    return [{"id": f"p{i}", "prompt": p} for i, p in enumerate(format_prompts(tokenizer, texts))]


@pytest.fixture(autouse=True)
def one_thread_per_engine(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


def test_two_engines_write_the_one_engine_file(model_dir, tmp_path):
    spec = BackendSpec("hf", model_dir, dtype="float32", batch_size=2, device="cpu")
    items = make_items(10)
    one = tmp_path / "one.jsonl"
    meta_one = generate_to_file(spec, items, one, SAMPLE, seed=3, shard_size=4, show_progress=False)
    two = tmp_path / "two.jsonl"
    meta_two = generate_to_file(
        spec, items, two, SAMPLE, seed=3, shard_size=2, show_progress=False, engines=2
    )
    assert two.read_bytes() == one.read_bytes()
    assert meta_two["fingerprint"] == meta_one["fingerprint"] and meta_two["engines"] == 2
    assert meta_two["backend"]["backend"] == "hf" and meta_two["backend"]["device"] == "cpu"
    assert not shard_dir(two).exists()
    # complete: a second call neither starts engines nor rewrites the file
    again = generate_to_file(spec, items, two, SAMPLE, seed=3, shard_size=2, engines=2)
    assert again == read_json(meta_path(two))


KILLED_RUN = textwrap.dedent(
    """
    import sys
    from iris.generation import BackendSpec, SamplingParams, generate_to_file
    from tests.test_generation_engines import make_items

    spec = BackendSpec("hf", sys.argv[1], dtype="float32", batch_size=2, device="cpu")
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=24)
    generate_to_file(spec, make_items(40), sys.argv[2], params, seed=5, shard_size=2,
                     show_progress=False, engines=2)
    """
)


def test_sigkill_during_two_engine_generation_then_resume(model_dir, tmp_path):
    spec = BackendSpec("hf", model_dir, dtype="float32", batch_size=2, device="cpu")
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=24)
    items = make_items(40)
    out = tmp_path / "run" / "generated.jsonl"
    out.parent.mkdir()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(model_dir), str(out)], env=env
    )
    shards = shard_dir(out)
    deadline = time.monotonic() + 240
    while len(list(shards.glob("shard_*.jsonl"))) < 2 and time.monotonic() < deadline:
        assert process.poll() is None, "the generation ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists(), "the kill landed after the merge; give the run more prompts"
    time.sleep(1.0)  # the engines die with their parent: no shard appears after this
    written = sorted(p.name for p in shards.glob("shard_*.jsonl"))
    time.sleep(1.0)
    assert sorted(p.name for p in shards.glob("shard_*.jsonl")) == written
    assert 2 <= len(written) < 20

    meta = generate_to_file(
        spec, items, out, params, seed=5, shard_size=2, show_progress=False, engines=2
    )
    reference = tmp_path / "reference.jsonl"
    generate_to_file(spec, items, reference, params, seed=5, shard_size=8, show_progress=False)
    assert out.read_bytes() == reference.read_bytes() and meta["n"] == len(items)
