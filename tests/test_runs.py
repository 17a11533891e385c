"""iris.runs: atomic writes, the manifest, stage markers with checksums, the resume check."""

from __future__ import annotations

import collections
import io
import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from iris import runs
from iris.config import SelfPlayConfig, from_dict, non_result_keys, to_dict
from iris.runs import (
    ConfigMismatchError,
    RunDir,
    atomic_output,
    atomic_write_json,
    atomic_write_jsonl,
    checksum_outputs,
    config_diff,
    flatten_config,
    read_json,
    read_jsonl,
)


def make_config(**changes):
    data = {
        "model": {"name_or_path": "tiny", "dtype": "float32"},
        "data": {"source": "data.jsonl", "n_train": 100},
        "training": {"loss": "iris", "alpha": 0.5, "logging_steps": 10},
        "iterations": 2,
        "output_dir": "runs/a",
    }
    for key, value in changes.items():
        target = data
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return from_dict(SelfPlayConfig, data)


def start(run, cfg, **kwargs):
    return run.start(
        to_dict(cfg), non_result_keys=non_result_keys(cfg), seeds={"seed": cfg.seed}, **kwargs
    )


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# ---- atomic writes ---------------------------------------------------------------------


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.jsonl"
    atomic_write_jsonl(path, [{"a": 1}])

    def rows():
        yield {"a": 2}
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write_jsonl(path, rows())
    assert read_jsonl(path) == [{"a": 1}]
    assert leftovers(tmp_path) == []

    missing = tmp_path / "never.json"
    with pytest.raises(ZeroDivisionError), atomic_output(missing) as handle:
        handle.write("partial")
        _ = 1 / 0
    assert not missing.exists() and leftovers(tmp_path) == []


def test_atomic_output_refuses_append_mode(tmp_path):
    with pytest.raises(ValueError, match="whole files"), atomic_output(tmp_path / "x", mode="a"):
        pass


def test_read_jsonl_errors_name_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2\n')
    with pytest.raises(ValueError, match=r"rows\.jsonl line 3: invalid JSON"):
        read_jsonl(path)


# ---- manifest --------------------------------------------------------------------------


def test_manifest_contents(tmp_path):
    run = RunDir(tmp_path / "run")
    cfg = make_config()
    manifest = start(run, cfg, command=["iris", "selfplay", "--config", "c.yaml"])
    on_disk = read_json(run.manifest_path)
    assert on_disk == json.loads(json.dumps(manifest))
    assert on_disk["config"] == to_dict(cfg)
    assert "output_dir" in on_disk["non_result_keys"]
    assert on_disk["seeds"] == {"seed": 0}
    assert on_disk["command"] == ["iris", "selfplay", "--config", "c.yaml"]
    assert set(on_disk["git"]) >= {"revision", "dirty"}
    for package in (
        "torch",
        "transformers",
        "trl",
        "datasets",
        "accelerate",
        "iris-selfplay",
        "python",
    ):
        assert package in on_disk["packages"]
    assert on_disk["packages"]["torch"] is not None
    hardware = on_disk["hardware"]
    assert hardware["cpu_count"] >= 1 and hardware["cpu"] and "gpu_count" in hardware
    assert len(on_disk["invocations"]) == 1 and on_disk["invocations"][0]["started_at"]

    run.finish()
    assert read_json(run.manifest_path)["invocations"][0]["ended_at"] is not None


def test_stage_timings_are_recorded(tmp_path):
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    with run.stage("generate", 0) as info:
        info["n_truncated"] = 3
    with pytest.raises(RuntimeError), run.stage("train", 0):
        raise RuntimeError("out of memory")
    with run.stage("train", 0):
        pass
    stages = read_json(run.manifest_path)["stages"]
    (generate,) = stages["iter_0/generate"]
    assert generate["status"] == "done" and generate["n_truncated"] == 3
    assert generate["started_at"] <= generate["ended_at"] and generate["duration_s"] >= 0
    failed, done = stages["iter_0/train"]
    assert failed["status"] == "failed" and "out of memory" in failed["error"]
    assert done["status"] == "done"
    assert (tmp_path / "run" / "iter_0").is_dir()


def test_resume_with_same_config_appends_an_invocation(tmp_path):
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    start(run, make_config())
    assert len(read_json(run.manifest_path)["invocations"]) == 2


def test_resume_refuses_changed_result_keys(tmp_path):
    """Once a stage has completed, its inputs are fixed: a changed result key is refused."""
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    (run.root / "data.jsonl").write_text("{}\n")
    run.mark_done("data", ["data.jsonl"])
    changed = make_config(
        **{"data.n_train": 200, "training.alpha": 0.7, "generation.temperature": 0.5}
    )
    with pytest.raises(ConfigMismatchError) as err:
        start(run, changed)
    message = str(err.value)
    for key in ("data.n_train", "training.alpha", "generation.temperature"):
        assert key in message
    assert "saved=100 now=200" in message
    assert "Completed with the saved config: data." in message
    assert len(read_json(run.manifest_path)["invocations"]) == 1  # nothing written


def test_a_start_with_no_completed_stage_takes_the_corrected_config(tmp_path):
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    start(run, make_config(**{"data.n_train": 200}))
    manifest = read_json(run.manifest_path)
    assert manifest["config"]["data"]["n_train"] == 200
    assert manifest["invocations"][-1]["replaced_config"] == {
        "data.n_train": {"saved": 100, "now": 200}
    }


def test_a_key_no_completed_stage_read_is_accepted(tmp_path):
    """Data and iteration 0's generation done: training keys may change, data keys may not."""
    from iris.selfplay import stage_inputs

    run = RunDir(tmp_path / "run")
    start(run, make_config())
    for stage, iteration in (("data", None), ("generate", 0)):
        (run.root / f"{stage}.txt").write_text("x")
        run.mark_done(stage, [f"{stage}.txt"], iteration)
    start(run, make_config(**{"training.alpha": 0.7}), inputs=stage_inputs)
    manifest = read_json(run.manifest_path)
    assert manifest["config"]["training"]["alpha"] == 0.7
    assert manifest["invocations"][-1]["replaced_config"] == {
        "training.alpha": {"saved": 0.5, "now": 0.7}
    }
    with pytest.raises(ConfigMismatchError) as err:
        start(
            run,
            make_config(**{"training.alpha": 0.7, "generation.top_p": 0.5}),
            inputs=stage_inputs,
        )
    assert "generation.top_p: saved=1.0 now=0.5 (invalidates iter_0/generate)" in str(err.value)
    assert "training.alpha" not in str(err.value)  # unused by what is done: not a reason
    run.mark_done("train", ["data.txt"], 0)  # now training.alpha is used
    with pytest.raises(ConfigMismatchError, match=r"training\.alpha: .*invalidates iter_0/train"):
        start(run, make_config(), inputs=stage_inputs)


def test_stage_inputs_follow_the_loop():
    from iris.selfplay import stage_inputs

    assert stage_inputs("data") == ("data",)
    assert "training" not in stage_inputs("iter_0/generate")
    assert "training" in stage_inputs("iter_1/generate")  # θ1 is trained with it
    assert "evaluation" in stage_inputs("iter_0/eval") and stage_inputs("nonsense") is None


def test_resume_allows_non_result_keys(tmp_path):
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    moved = make_config(
        **{"output_dir": "elsewhere", "training.logging_steps": 1, "generation.shard_size": 7}
    )
    start(run, moved)
    invocation = read_json(run.manifest_path)["invocations"][-1]
    assert set(invocation["changed_non_result_keys"]) == {
        "output_dir",
        "training.logging_steps",
        "generation.shard_size",
    }
    assert read_json(run.manifest_path)["config"]["output_dir"] == "elsewhere"  # the latest


def test_config_diff():
    saved = {"a": {"b": 1, "c": [1, 2]}, "out": "x", "t": {"logging_steps": 5}, "f": 1.0}
    current = {
        "a": {"b": 1, "c": [1, 3]},
        "out": "y",
        "t": {"logging_steps": 6, "new": True},
        "f": 1,
    }
    assert config_diff(saved, current, ignore=["out", "t.logging_*"]) == {
        "a.c": ([1, 2], [1, 3]),
        "t.new": ("<missing>", True),
    }
    assert config_diff({"x": True}, {"x": 1}) == {"x": (True, 1)}
    assert flatten_config({"a": {}, "b": {"c": {}}}) == {"a": {}, "b.c": {}}


# ---- markers ---------------------------------------------------------------------------


def test_markers_verify_checksums(tmp_path):
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    out = run.iteration_dir(0) / "generated.jsonl"
    atomic_write_jsonl(out, [{"id": "a", "text": "hello"}])
    model = run.iteration_dir(0) / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "weights.bin").write_bytes(b"\x00" * 64)

    assert not run.stage_done("generate", 0)
    marker = run.mark_done("generate", [out, model], 0, info={"n": 1})
    assert marker == tmp_path / "run" / "iter_0" / "generate.DONE"
    content = read_json(marker)
    assert set(content["outputs"]) == {
        "iter_0/generated.jsonl",
        "iter_0/model/config.json",
        "iter_0/model/weights.bin",
    }
    assert content["info"] == {"n": 1}
    assert run.stage_done("generate", 0)
    assert [
        int(m.parent.name.removeprefix("iter_")) for m in run.root.glob("iter_*/generate.DONE")
    ] == [0]

    # Same size, different bytes: only the checksum catches it.
    (model / "weights.bin").write_bytes(b"\x01" + b"\x00" * 63)
    assert run.stage_done("generate", 0, verify=False)
    assert not run.stage_done("generate", 0)
    (model / "weights.bin").write_bytes(b"\x00" * 64)
    assert run.stage_done("generate", 0)

    out.unlink()
    assert not run.stage_done("generate", 0)


def test_markers_are_relative_so_runs_can_move(tmp_path):
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    atomic_write_json(tmp_path / "run" / "data" / "split.json", {"n": 1})
    run.mark_done("data", ["data/split.json"])
    (tmp_path / "run").rename(tmp_path / "moved")
    assert RunDir(tmp_path / "moved").stage_done("data")


def test_mark_done_rejects_missing_or_outside_outputs(tmp_path):
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    with pytest.raises(FileNotFoundError):
        run.mark_done("train", [run.iteration_dir(0) / "missing.bin"], 0)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    with pytest.raises(ValueError, match="outside the run directory"):
        run.mark_done("train", [outside], 0)
    assert not run.marker_path("train", 0).exists()


def test_corrupt_marker_and_invalidate(tmp_path):
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    run.mark_done("eval", [], 1)
    assert run.stage_done("eval", 1)
    run.marker_path("eval", 1).unlink()  # a removed marker: the stage is to be re-run
    assert not run.stage_done("eval", 1)
    run.marker_path("eval", 1).write_text("{not json")
    assert not run.stage_done("eval", 1)


def test_non_main_process_writes_nothing(tmp_path):
    root = tmp_path / "run"
    follower = RunDir(root, main_process=False)
    cfg = make_config()
    follower.start(to_dict(cfg))
    follower.iteration_dir(0)
    assert not root.exists()
    leader = RunDir(root)
    start(leader, cfg)
    (root / "x.txt").write_text("x")
    follower.mark_done("s", [root / "x.txt"])
    assert not follower.stage_done("s")
    leader.mark_done("s", [root / "x.txt"])
    assert follower.stage_done("s")
    assert checksum_outputs(root, ["x.txt"])["x.txt"]["size"] == 1


def test_layout_paths(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.generated_path(2) == tmp_path / "run" / "iter_2" / "generated.jsonl"
    assert run.train_data_path(0).name == "train.jsonl" and run.model_dir(0).name == "model"
    assert run.metrics_path(1).name == "metrics.jsonl" and run.eval_dir(1).name == "eval"
    assert run.proto_path == tmp_path / "run" / "proto.jsonl" and run.data_dir.name == "data"
    assert (tmp_path / "run" / "iter_2").is_dir()
    with pytest.raises(ValueError):
        run.iteration_dir(-1)


def test_relative_run_directory(tmp_path, monkeypatch):
    """A run directory given relative to the working directory marks its outputs correctly."""
    from iris.runs import RunDir, atomic_write_text

    monkeypatch.chdir(tmp_path)
    run = RunDir("outputs/run")
    run.start({"a": 1})
    atomic_write_text(run.data_dir / "train.jsonl", "{}\n")
    run.mark_done("data", [run.data_dir])
    assert run.stage_done("data")
    assert run.root == tmp_path / "outputs" / "run"


# ---- marker entries of large files: size + fingerprint ---------------------------------
#
# A file above runs.FULL_HASH_MAX_BYTES records its size and a fingerprint (safetensors:
# sha256 of the header + a structural size check; any other file: sha256 of both ends)
# instead of a full sha256, so verifying a 7B model reads kilobytes, not 15 GB. Most tests
# lower the limit to 4 KiB (and the ends to 1 KiB) so that a 64 KiB file counts as large.

WEIGHTS = "iter_0/model/model.safetensors"


@pytest.fixture
def small_limits(monkeypatch):
    monkeypatch.setattr(runs, "FULL_HASH_MAX_BYTES", 4096)
    monkeypatch.setattr(runs, "ENDS_BYTES", 1024)


def save_weights(path, tensors):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def tiny_model(model_dir, tensors=None):
    """A model folder: config.json (small: full sha256) and a 64 KiB model.safetensors."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.json").write_text('{"hidden_size": 64}')
    tensors = {"w": torch.zeros(16_384)} if tensors is None else tensors
    return save_weights(model_dir / "model.safetensors", tensors)


def flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def data_start(path):
    """Offset of a safetensors file's first tensor byte: 8 + header length."""
    return 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]


def edit_marker_entry(run, stage, iteration, relative, entry):
    marker = run.marker_path(stage, iteration)
    content = read_json(marker)
    content["outputs"][relative] = entry
    atomic_write_json(marker, content)


def count_reads(monkeypatch):
    """Bytes iris.runs reads from disk, per file name (counted where the OS delivers them)."""
    counts = collections.Counter()

    class CountingFileIO(io.FileIO):
        def readinto(self, buffer):
            n = super().readinto(buffer)
            counts[Path(self.name).name] += n or 0
            return n

        def readall(self):
            data = super().readall()
            counts[Path(self.name).name] += len(data)
            return data

    def counting_open(path, mode="r", *args, **kwargs):
        assert mode == "rb", mode
        return io.BufferedReader(CountingFileIO(path, "rb"))

    monkeypatch.setattr(runs, "open", counting_open, raising=False)
    return counts


def test_large_safetensors_entry_verifies(tmp_path, small_limits):
    run = RunDir(tmp_path / "run")
    weights = tiny_model(run.model_dir(0))
    run.mark_done("train", [run.model_dir(0)], 0)
    outputs = read_json(run.marker_path("train", 0))["outputs"]
    assert set(outputs["iter_0/model/config.json"]) == {"sha256", "size"}
    assert set(outputs[WEIGHTS]) == {"size", "kind", "header_sha256"}
    assert outputs[WEIGHTS]["kind"] == "safetensors"
    assert outputs[WEIGHTS]["size"] == weights.stat().st_size
    assert run.stage_done("train", 0) and run.stage_done("train", 0, verify=False)


def test_truncated_or_padded_safetensors_fails(tmp_path, small_limits):
    run = RunDir(tmp_path / "run")
    weights = tiny_model(run.model_dir(0))
    run.mark_done("train", [weights], 0)
    entry = read_json(run.marker_path("train", 0))["outputs"][WEIGHTS]
    intact = weights.read_bytes()
    for damaged in (intact[:-1], intact[: len(intact) // 2], intact + b"\0" * 8):
        weights.write_bytes(damaged)
        assert not run.stage_done("train", 0, verify=False)  # the size tells
        assert not run.stage_done("train", 0)
        # With a marker recording the damaged size, the header's offsets still disagree.
        edit_marker_entry(run, "train", 0, WEIGHTS, {**entry, "size": len(damaged)})
        assert not run.stage_done("train", 0)
        assert "truncated or padded" in runs.check_output(weights, {**entry, "size": len(damaged)})
        edit_marker_entry(run, "train", 0, WEIGHTS, entry)
    weights.write_bytes(intact)
    assert run.stage_done("train", 0)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"a": torch.zeros(16_384)}, {"b": torch.zeros(16_384)}),  # tensor name
        ({"w": torch.zeros(16_384)}, {"w": torch.zeros(16_384, dtype=torch.int32)}),  # dtype
        ({"w": torch.zeros(4, 4096)}, {"w": torch.zeros(4096, 4)}),  # shape
    ],
    ids=["name", "dtype", "shape"],
)
def test_changed_safetensors_header_of_the_same_size_fails(tmp_path, small_limits, before, after):
    run = RunDir(tmp_path / "run")
    weights = tiny_model(run.model_dir(0), before)
    size = weights.stat().st_size
    run.mark_done("train", [run.model_dir(0)], 0)
    save_weights(weights, after)
    assert weights.stat().st_size == size  # only the header differs
    assert run.stage_done("train", 0, verify=False)
    assert not run.stage_done("train", 0)


def test_missing_or_swapped_shard_of_a_sharded_model_fails(tmp_path, small_limits):
    run = RunDir(tmp_path / "run")
    model = run.model_dir(0)
    shards = [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    save_weights(model / shards[0], {"a": torch.zeros(16_384)})
    save_weights(model / shards[1], {"b": torch.ones(16_384)})
    atomic_write_json(
        model / "model.safetensors.index.json", {"weight_map": dict(zip("ab", shards, strict=True))}
    )
    run.mark_done("train", [model], 0)
    assert run.stage_done("train", 0)
    second = (model / shards[1]).read_bytes()

    (model / shards[1]).unlink()
    assert not run.stage_done("train", 0, verify=False)
    assert not run.stage_done("train", 0)
    (model / shards[1]).write_bytes((model / shards[0]).read_bytes())  # same size, tensor "a"
    assert not run.stage_done("train", 0)
    (model / shards[1]).write_bytes(second)
    assert run.stage_done("train", 0)


def test_small_file_modification_fails(tmp_path, small_limits):
    run = RunDir(tmp_path / "run")
    tiny_model(run.model_dir(0))
    run.mark_done("train", [run.model_dir(0)], 0)
    (run.model_dir(0) / "config.json").write_text('{"hidden_size": 65}')  # same size
    assert run.stage_done("train", 0, verify=False)
    assert not run.stage_done("train", 0)


def test_mid_file_change_in_a_large_file_is_not_detected(tmp_path, small_limits):
    """The documented trade-off: a large file's middle is not hashed, only its size,
    header (safetensors) or first and last ENDS_BYTES (other files) are."""
    run = RunDir(tmp_path / "run")
    weights = tiny_model(run.model_dir(0))
    optimizer = run.model_dir(0) / "optimizer.bin"
    optimizer.write_bytes(bytes(range(256)) * 256)  # 64 KiB
    run.mark_done("train", [run.model_dir(0)], 0)
    entries = read_json(run.marker_path("train", 0))["outputs"]
    assert set(entries["iter_0/model/optimizer.bin"]) == {"size", "kind", "ends_sha256"}
    assert entries["iter_0/model/optimizer.bin"]["kind"] == "ends"

    flip_byte(weights, (data_start(weights) + weights.stat().st_size) // 2)
    flip_byte(weights, data_start(weights))  # even the first tensor byte
    flip_byte(optimizer, optimizer.stat().st_size // 2)
    assert run.stage_done("train", 0)

    # The ends of a non-safetensors file are hashed.
    for offset in (0, optimizer.stat().st_size - 1):
        flip_byte(optimizer, offset)
        assert not run.stage_done("train", 0)
        flip_byte(optimizer, offset)
    assert run.stage_done("train", 0)


def test_verifying_a_large_file_reads_only_its_header(tmp_path, monkeypatch):
    """At the real limit: a file just over 16 MiB costs O(header) bytes to mark and verify."""
    run = RunDir(tmp_path / "run")
    model = run.model_dir(0)
    weights = tiny_model(model, {"w": torch.zeros(runs.FULL_HASH_MAX_BYTES // 4 + 16)})
    optimizer = model / "optimizer.pt"
    optimizer.write_bytes(b"\1" * (runs.FULL_HASH_MAX_BYTES + 1))
    assert weights.stat().st_size > runs.FULL_HASH_MAX_BYTES
    bytes_read = count_reads(monkeypatch)
    hashed = []
    full_sha256 = runs.sha256_file
    monkeypatch.setattr(
        runs, "sha256_file", lambda path, **kw: hashed.append(Path(path).name) or full_sha256(path)
    )

    run.mark_done("train", [model], 0)
    assert run.stage_done("train", 0)

    assert hashed == ["config.json", "config.json"]  # once to mark, once to verify
    assert bytes_read["config.json"] == 2 * (model / "config.json").stat().st_size
    buffer = io.DEFAULT_BUFFER_SIZE  # a buffered read may fetch up to one buffer more
    assert bytes_read["model.safetensors"] <= 2 * (data_start(weights) + buffer)
    assert bytes_read["optimizer.pt"] <= 2 * (2 * runs.ENDS_BYTES + buffer)


def test_mark_done_on_a_non_main_process_reads_no_output(tmp_path, monkeypatch):
    root = tmp_path / "run"
    weights = tiny_model(root / "iter_0" / "model")

    def forbidden(*args, **kwargs):
        raise AssertionError("a non-main process read a stage output")

    for name in ("checksum_outputs", "output_entry", "sha256_file", "_expand_outputs"):
        monkeypatch.setattr(runs, name, forbidden)
    follower = RunDir(root, main_process=False)
    marker = follower.mark_done("train", [weights.parent, root / "not-yet-written.bin"], 0)
    assert marker == root / "iter_0" / "train.DONE" and not marker.exists()


def test_old_marker_with_a_full_sha256_for_a_large_file_still_verifies(tmp_path, small_limits):
    run = RunDir(tmp_path / "run")
    weights = tiny_model(run.model_dir(0))
    run.mark_done("train", [run.model_dir(0)], 0)
    # What markers held before fingerprints: a full sha256 for every file, whatever its size.
    old_entry = {"sha256": runs.sha256_file(weights), "size": weights.stat().st_size}
    edit_marker_entry(run, "train", 0, WEIGHTS, old_entry)
    assert run.stage_done("train", 0)
    flip_byte(weights, weights.stat().st_size // 2)  # verified as before: the whole file
    assert not run.stage_done("train", 0)
    assert run.stage_done("train", 0, verify=False)


def test_unknown_or_invalid_entries_never_verify(tmp_path, small_limits):
    run = RunDir(tmp_path / "run")
    weights = tiny_model(run.model_dir(0))
    run.mark_done("train", [weights], 0)
    size = weights.stat().st_size
    for entry in ({"size": size, "kind": "blake3", "blake3": "0"}, {"size": size}, "abc"):
        edit_marker_entry(run, "train", 0, WEIGHTS, entry)
        assert not run.stage_done("train", 0)


def test_mark_done_refuses_a_large_broken_safetensors_file(tmp_path, small_limits):
    run = RunDir(tmp_path / "run")
    weights = tiny_model(run.model_dir(0))
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ValueError, match="truncated or padded"):
        run.mark_done("train", [weights], 0)
    weights.write_bytes(b"\xff" * 8192)
    with pytest.raises(ValueError, match="does not fit"):
        run.mark_done("train", [weights], 0)
    assert not run.marker_path("train", 0).exists()


def test_last_complete_checkpoint_skips_one_a_kill_interrupted(tmp_path):
    from iris.runs import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "absent") is None
    assert last_complete_checkpoint(tmp_path) is None
    for step, state in ((2, '{"global_step": 2}'), (10, '{"global_step": 10}'), (12, "")):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-13").mkdir()  # killed before its state file was written
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
