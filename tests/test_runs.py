"""iris.runs: atomic writes, the manifest, stage markers with checksums, the resume check."""

from __future__ import annotations

import json

import pytest

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
    run = RunDir(tmp_path / "run")
    start(run, make_config())
    changed = make_config(
        **{"data.n_train": 200, "training.alpha": 0.7, "generation.temperature": 0.5}
    )
    with pytest.raises(ConfigMismatchError) as err:
        start(run, changed)
    message = str(err.value)
    for key in ("data.n_train", "training.alpha", "generation.temperature"):
        assert key in message
    assert "saved=100 now=200" in message
    assert len(read_json(run.manifest_path)["invocations"]) == 1  # nothing written


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
    assert run.completed_iterations("generate") == [0]

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
    run.invalidate("eval", 1)
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
