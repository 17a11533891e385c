"""iris.evaluation through lm-eval, offline, on a tiny model and local JSONL tasks.

The local tasks are lm-eval task YAMLs with ``dataset_path: json`` and absolute
``data_files``: a multiple-choice task (few-shot), a group of two multiple-choice tasks
(lm-eval's group aggregate), and a generate-until task. They are scored through the CLI
function (model from a directory) and through the loop's evaluator (in-memory model);
both must agree. The built-in suites are checked against lm-eval's real task registry
(configs only: nothing is downloaded).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("lm_eval")

from iris.evaluation import (
    EvaluationError,
    MissingDatasetError,
    Suite,
    TaskSpec,
    UnknownTaskError,
    load_suite,
    make_evaluator,
    prefetch,
    prefetch_plan,
    resolve_suite,
)
from iris.evaluation.cli import add_eval_arguments, run_eval
from iris.evaluation.harness import check_suite, load_suite_tasks, suite_task_manager
from iris.evaluation.hub_cache import leaf_tasks
from iris.tiny_models import save_tiny_model

WORDS = "the cat dog sat on mat yes no red blue green answer question is what".split()

MC_TEMPLATE = """\
dataset_path: json
test_split: test
fewshot_split: train
output_type: multiple_choice
doc_to_text: "{{{{question}}}} answer"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
dataset_kwargs:
  data_files:
    test: {data}
    train: {data}
metadata:
  version: 1.0
"""
GEN_TASK = """\
task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{q}}}} answer"
doc_to_target: "{{{{a}}}}"
generation_kwargs:
  until: ["<eos>"]
  max_gen_toks: 3
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 2.0
"""
SUITE = """\
name: tiny
description: two multiple-choice tasks (one a group) and a generate-until task, local JSONL
include_path: [tasks]
tasks:
  - task: tiny_mc
    num_fewshot: 2
    metric: acc_norm
  - task: tiny_group
    num_fewshot: 1
    metric: acc
  - task: tiny_gen
    label: Tiny generation
    num_fewshot: 0
    metric: exact_match
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    return write(path, "".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("evaluation")
    model_dir = save_tiny_model(root / "model", WORDS)
    subjects = ["cat", "dog", "mat", "cat", "dog", "mat"]
    mc = write_jsonl(
        root / "data" / "mc.jsonl",
        [
            {"question": f"what is the {w}", "choices": ["red", "blue", "green"], "label": i % 3}
            for i, w in enumerate(subjects)
        ],
    )
    gen = write_jsonl(
        root / "data" / "gen.jsonl", [{"q": f"the {w} sat", "a": "yes"} for w in subjects[:3]]
    )
    tasks = root / "tasks"
    write(tasks / "_mc_template_yaml", MC_TEMPLATE.format(data=mc))
    write(tasks / "tiny_mc.yaml", "include: _mc_template_yaml\ntask: tiny_mc\n")
    write(tasks / "tiny_mc_a.yaml", "include: _mc_template_yaml\ntask: tiny_mc_a\n")
    write(
        tasks / "tiny_mc_b.yaml",
        'include: _mc_template_yaml\ntask: tiny_mc_b\ndoc_to_text: "{{question}} is"\n',
    )
    write(
        tasks / "_tiny_group.yaml",
        "group: tiny_group\ntask: [tiny_mc_a, tiny_mc_b]\n"
        "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n"
        "metadata:\n  version: 1.0\n",
    )
    write(tasks / "tiny_gen.yaml", GEN_TASK.format(data=gen))
    suite = write(root / "suite.yaml", SUITE)
    return SimpleNamespace(
        root=root, model_dir=model_dir, tasks=tasks, suite=suite, n_mc=6, n_gen=3
    )


@pytest.fixture(scope="module")
def cli_run(workspace):
    """``iris eval --model DIR --suite suite.yaml --output-dir DIR`` (timed)."""
    import time

    out = workspace.root / "cli_out"
    args = add_eval_arguments(argparse.ArgumentParser()).parse_args(
        [
            "--model",
            str(workspace.model_dir),
            "--suite",
            str(workspace.suite),
            "--output-dir",
            str(out),
            "--batch-size",
            "4",
            "--bootstrap-iters",
            "0",
        ]
    )
    start = time.perf_counter()
    status = run_eval(args)
    return SimpleNamespace(status=status, out=out, seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------


def test_cli_scores_a_local_suite_end_to_end_offline(workspace, cli_run, capsys):
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"
    assert cli_run.status == 0
    print(f"local suite evaluation through the CLI: {cli_run.seconds:.1f} s")
    results = json.loads((cli_run.out / "tiny.lm_eval.json").read_text())
    summary = json.loads((cli_run.out / "tiny.summary.json").read_text())
    raw = results["results"]
    # The summary reads lm-eval's numbers, untouched.
    assert summary["tasks"]["tiny_mc"]["value"] == raw["tiny_mc"]["acc_norm,none"]
    assert summary["tasks"]["tiny_group"]["value"] == raw["tiny_group"]["acc,none"]
    assert summary["tasks"]["tiny_gen"]["value"] == raw["tiny_gen"]["exact_match,none"]
    values = [summary["tasks"][t]["value"] for t in ("tiny_mc", "tiny_group", "tiny_gen")]
    assert summary["average"] == pytest.approx(sum(values) / 3)
    assert summary["flat"] == {
        "tiny_mc/acc_norm": values[0],
        "tiny_group/acc": values[1],
        "tiny_gen/exact_match": values[2],
        "average": summary["average"],
    }
    assert summary["missing"] == [] and all(math.isfinite(v) for v in values)
    # The group score is lm-eval's aggregate over both subtasks' samples.
    assert raw["tiny_group"]["acc,none"] == pytest.approx(
        (raw["tiny_mc_a"]["acc,none"] + raw["tiny_mc_b"]["acc,none"]) / 2
    )
    assert [summary["tasks"][t]["n"] for t in ("tiny_mc", "tiny_group", "tiny_gen")] == [
        workspace.n_mc,
        2 * workspace.n_mc,
        workspace.n_gen,
    ]
    # The suite's shots reached every subtask.
    assert results["n-shot"] == {
        "tiny_mc": 2,
        "tiny_mc_a": 1,
        "tiny_mc_b": 1,
        "tiny_group": 1,
        "tiny_gen": 0,
    }
    assert summary["tasks"]["tiny_gen"]["label"] == "Tiny generation"
    provenance = summary["provenance"]
    assert provenance["lm_eval_version"] == "0.4.13"
    assert provenance["task_versions"]["tiny_gen"] == 2.0
    assert set(provenance["seeds"]) == {"random_seed", "numpy_seed", "torch_seed", "fewshot_seed"}
    assert provenance["model"]["source"] == "local"
    assert provenance["model"]["path"] == str(workspace.model_dir.resolve())
    assert provenance["settings"]["apply_chat_template"] is False
    assert provenance["settings"]["batch_size"] == 4 and provenance["settings"]["device"] == "cpu"
    assert provenance["suite"]["sha256"] and provenance["packages"]["lm-eval"] == "0.4.13"
    assert not list(cli_run.out.glob(".*.tmp"))  # atomic writes leave no temporaries


def test_in_memory_evaluator_matches_the_cli_and_restores_the_model(workspace, cli_run, tmp_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(workspace.model_dir)
    model.train()
    evaluator = make_evaluator(
        {
            "kind": "lm_eval",
            "suite": str(workspace.suite),
            "every": 2,
            "limit": None,
            "batch_size": 4,
            "apply_chat_template": False,
            "bootstrap_iters": 0,
        }
    )
    assert [t for t in range(3) if evaluator.should_run(t, 3)] == [1, 2]
    # No tokenizer given: it is loaded from the model directory.
    flat = evaluator.evaluate(
        workspace.model_dir, iteration=1, output_dir=tmp_path, model=model, tokenizer=None
    )
    cli_flat = json.loads((cli_run.out / "tiny.summary.json").read_text())["flat"]
    assert flat == pytest.approx(cli_flat)
    assert model.training  # the caller's train mode is restored
    summary = json.loads((tmp_path / "tiny.summary.json").read_text())
    assert summary["flat"] == pytest.approx(flat)
    assert summary["provenance"]["iteration"] == 1
    assert summary["provenance"]["model"]["source"] == "in-memory"
    assert summary["provenance"]["model"]["model_dir"] == str(workspace.model_dir)
    assert (tmp_path / "tiny.lm_eval.json").is_file()


def test_chat_template_is_applied_and_recorded(workspace, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(workspace.model_dir)
    tokenizer = AutoTokenizer.from_pretrained(workspace.model_dir)
    # An lm-eval task YAML used directly as a suite.
    evaluator = make_evaluator(
        {
            "kind": "lm_eval",
            "suite": str(workspace.tasks / "tiny_mc.yaml"),
            "limit": 2,
            "apply_chat_template": True,
            "log_samples": True,
            "name": "chat",
            "bootstrap_iters": 0,
        }
    )
    flat = evaluator.evaluate(
        workspace.model_dir, iteration=0, output_dir=tmp_path, model=model, tokenizer=tokenizer
    )
    assert set(flat) == {"tiny_mc/acc", "average"}  # ad-hoc suite: the task's first metric
    settings = json.loads((tmp_path / "chat.summary.json").read_text())["provenance"]["settings"]
    assert settings["apply_chat_template"] is True and len(settings["chat_template_sha256"]) == 64
    rows = [json.loads(line) for line in (tmp_path / "chat.samples" / "tiny_mc.jsonl").open()]
    assert len(rows) == 2 and "<|user|>" in rows[0]["arguments"][0][0]


def test_lm_eval_finds_the_results_in_its_own_layout(workspace, cli_run):
    """lm-eval's own result-file discovery finds ``<out>/<model>/results_<time>.json``,
    written by its EvaluationTracker (model_name, task_hashes, chat_template…)."""
    from lm_eval.utils import (
        get_file_datetime,
        get_latest_filename,
        get_results_filenames,
        sanitize_model_name,
    )

    found = get_results_filenames([str(p) for p in cli_run.out.rglob("*") if p.is_file()])
    assert len(found) == 1
    latest = Path(get_latest_filename(found))
    assert latest.parent == cli_run.out / sanitize_model_name(str(workspace.model_dir))
    assert latest.name == f"results_{get_file_datetime(latest.name)}"
    data = json.loads(latest.read_text())
    assert data["model_name"] == str(workspace.model_dir) and data["model_source"] == "hf"
    assert data["task_hashes"] == {} and data["chat_template"] is None  # no samples, no chat
    assert {"chat_template_sha", "fewshot_as_multiturn", "total_evaluation_time_seconds"} <= set(
        data
    )
    assert set(data["results"]) >= {"tiny_mc", "tiny_group", "tiny_gen"}
    # iris's copy under the suite's name is the same file; the summary points at it.
    assert (cli_run.out / "tiny.lm_eval.json").read_bytes() == latest.read_bytes()
    summary = json.loads((cli_run.out / "tiny.summary.json").read_text())
    assert summary["provenance"]["lm_eval_files"] == [latest.relative_to(cli_run.out).as_posix()]


def test_rerun_replaces_the_lm_eval_layout_files(workspace, tmp_path):
    """Evaluating twice under one name leaves one run's files: lm-eval's results and
    per-task samples of the second run, with the task hashes of its samples."""
    from lm_eval.utils import get_file_datetime, get_results_filenames

    from iris.evaluation import EvalSettings, evaluate_suite

    settings = EvalSettings(limit=2, log_samples=True, bootstrap_iters=0, batch_size=4)
    suite = workspace.tasks / "tiny_mc.yaml"
    first = evaluate_suite(suite, workspace.model_dir, output_dir=tmp_path, settings=settings)
    second = evaluate_suite(suite, workspace.model_dir, output_dir=tmp_path, settings=settings)
    assert first.lm_eval_path != second.lm_eval_path and not first.lm_eval_path.exists()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    folder = second.lm_eval_path.parent.name
    stamp = get_file_datetime(second.lm_eval_path.name).removesuffix(".json")
    assert files == [
        f"{folder}/results_{stamp}.json",
        f"{folder}/samples_tiny_mc_{stamp}.jsonl",
        "tiny_mc.lm_eval.json",
        "tiny_mc.samples/tiny_mc.jsonl",
        "tiny_mc.summary.json",
    ]
    assert get_results_filenames([str(tmp_path / f) for f in files]) == [str(second.lm_eval_path)]
    assert set(json.loads(second.lm_eval_path.read_text())["task_hashes"]) == {"tiny_mc"}
    assert len((tmp_path / folder / f"samples_tiny_mc_{stamp}.jsonl").read_text().splitlines()) == 2


# --------------------------------------------------------------------------------------
# Task resolution, errors, prefetch plan (local registry: fast)
# --------------------------------------------------------------------------------------


def test_unknown_task_names_list_close_matches(workspace):
    suite = Suite(
        "typo",
        (TaskSpec("tiny_mcc"),),
        include_path=(str(workspace.tasks),),
        include_defaults=False,
    )
    with pytest.raises(UnknownTaskError, match=r"'tiny_mcc' \(close matches: tiny_mc"):
        load_suite_tasks(suite)


def test_metric_or_filter_not_declared_by_the_task_fails_before_loading(workspace):
    suite = Suite(
        "bad",
        (
            TaskSpec("tiny_mc", metric="f1"),
            TaskSpec("tiny_group", metric="acc_norm"),
            TaskSpec("tiny_gen", metric="exact_match", filter="strict-match"),
        ),
        include_path=(str(workspace.tasks),),
    )
    with pytest.raises(EvaluationError) as info:
        load_suite_tasks(suite)
    message = str(info.value)
    assert "tiny_mc: metric(s) ['f1']" in message
    assert "tiny_group: metric(s) ['acc_norm'] not among those lm-eval aggregates" in message
    assert "tiny_gen: filter 'strict-match' not among ['none']" in message


@pytest.fixture(scope="module")
def hub_suite(workspace) -> Suite:
    """Tasks on (uncached) hub datasets: a revision, an included template, a group with a
    member override, a tag, a gated dataset, and a local task."""
    hub = workspace.root / "hubtasks"
    write(
        hub / "hub_a.yaml",
        "task: hub_a\ntag: hub_tag\ndataset_path: org/data-a\n"
        "dataset_name: x\ndataset_kwargs:\n  revision: abc123\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: 0\ndoc_to_choice: [a, b]\n"
        "metric_list:\n  - metric: acc\n",
    )
    write(
        hub / "_b_template_yaml",
        "dataset_path: org/data-b\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: q\ndoc_to_target: 0\ndoc_to_choice: [a, b]\n"
        "metric_list:\n  - metric: acc\n",
    )
    write(hub / "hub_b1.yaml", "include: _b_template_yaml\ntask: hub_b1\ndataset_name: b1\n")
    write(hub / "hub_b2.yaml", "include: _b_template_yaml\ntask: hub_b2\ndataset_name: b2\n")
    write(
        hub / "_hub_group.yaml",
        "group: hub_group\ntask:\n  - hub_b1\n"
        "  - task: hub_b2\n    dataset_name: overridden\n"
        "aggregate_metric_list:\n  - metric: acc\n",
    )
    write(
        hub / "hub_gated.yaml",
        "include: _b_template_yaml\ntask: hub_gated\n"
        "dataset_path: Idavidrein/gpqa\ndataset_name: gpqa_main\n",
    )
    write(
        hub / "hub_tagged.yaml",
        "include: _b_template_yaml\ntask: hub_tagged\ntag: hub_tag\ndataset_name: t\n",
    )
    path = write(
        workspace.root / "hub_suite.yaml",
        "name: hub\ninclude_path: [hubtasks, tasks]\ninclude_defaults: false\n"
        "tasks: [hub_group, hub_tag, hub_gated, tiny_mc]\n",
    )
    return load_suite(path)


def test_prefetch_plan_lists_every_dataset_config_without_network(hub_suite):
    plan = prefetch_plan(hub_suite)
    assert [ref.key for ref in plan.datasets] == [
        ("Idavidrein/gpqa", "gpqa_main", None),
        ("org/data-a", "x", "abc123"),
        ("org/data-b", "b1", None),
        ("org/data-b", "overridden", None),  # the group's override of hub_b2's config
        ("org/data-b", "t", None),
    ]
    assert [ref.path for ref in plan.gated] == ["Idavidrein/gpqa"]
    assert plan.local_tasks == ("tiny_mc",) and plan.unresolved_tasks == ()
    by_key = {ref.key: ref.tasks for ref in plan.datasets}
    assert by_key[("org/data-b", "overridden", None)] == ("hub_b2",)
    assert by_key[("org/data-a", "x", "abc123")] == ("hub_a",)


def test_missing_dataset_offline_names_the_dataset_and_the_prefetch_command(hub_suite):
    one = Suite(
        "hub",
        (hub_suite.tasks[2],),
        include_path=hub_suite.include_path,
        include_defaults=False,
        source=hub_suite.source,
    )
    with pytest.raises(MissingDatasetError) as info:
        load_suite_tasks(one)
    message = str(info.value)
    assert "Idavidrein/gpqa (config 'gpqa_main') [gated]" in message
    assert f"iris eval --prefetch --suite {hub_suite.source}" in message
    assert "accept its terms" in message and "offline" in message


def test_prefetch_refuses_to_run_offline(hub_suite):
    with pytest.raises(EvaluationError, match="needs the network"):
        prefetch(hub_suite)


# --------------------------------------------------------------------------------------
# The built-in suites against lm-eval's real registry (index of ~15k tasks, configs only)
# --------------------------------------------------------------------------------------


def test_builtin_suites_resolve_in_lm_eval_registry(monkeypatch):
    import nltk
    from lm_eval.tasks._yaml_loader import load_yaml

    # IFEval's module downloads NLTK data on import: never from a test.
    monkeypatch.setattr(nltk, "download", lambda *args, **kwargs: True)
    expected_paths = {
        "iris10": {
            "openai/gsm8k": 1,
            "DigitalLearningGmbH/MATH-lighteval": 7,
            "TAUR-Lab/MuSR": 1,
            "cais/mmlu": 57,
            "TIGER-Lab/MMLU-Pro": 1,
            "Idavidrein/gpqa": 3,
            "Rowan/hellaswag": 1,
            "allenai/winogrande": 1,
            "SaylorTwift/bbh": 24,
            "wis-k/instruction-following-eval": 1,
        },
        "openllm_v1": {
            "allenai/ai2_arc": 1,
            "truthfulqa/truthful_qa": 1,
            "allenai/winogrande": 1,
            "openai/gsm8k": 1,
            "Rowan/hellaswag": 1,
            "cais/mmlu": 57,
        },
    }
    for name, paths in expected_paths.items():
        suite = resolve_suite(name)
        tm = suite_task_manager(suite)
        check_suite(suite, tm)  # names, metrics and filters exist in lm-eval's configs
        plan = prefetch_plan(suite, tm)
        keys = [ref.key for ref in plan.datasets]
        counts: dict[str, int] = {}
        for path, _, _ in keys:
            counts[path] = counts.get(path, 0) + 1
        assert counts == paths
        assert plan.local_tasks == () and plan.unresolved_tasks == ()
        assert ("openai/gsm8k", "main", None) in keys
        assert ("allenai/winogrande", "winogrande_xl", None) in keys
        # Every leaf config imports its functions (the eval extra is complete).
        leaves, _ = leaf_tasks(suite, tm)
        for yaml_path in sorted({leaf.yaml_path for leaf in leaves}):
            load_yaml(yaml_path, resolve_func=True)
    assert {ref.describe() for ref in prefetch_plan("iris10").gated} == {
        f"Idavidrein/gpqa (config 'gpqa_{c}') [gated]" for c in ("diamond", "extended", "main")
    }


def test_uncached_hub_model_offline_names_the_prefetch_command(workspace, tmp_path, capsys):
    args = add_eval_arguments(argparse.ArgumentParser()).parse_args(
        [
            "--model",
            "iris-test/no-such-model",
            "--revision",
            "abc123",
            "--suite",
            str(workspace.suite),
            "--output-dir",
            str(tmp_path),
            "--limit",
            "1",
        ]
    )
    assert run_eval(args) == 2
    err = capsys.readouterr().err
    assert (
        f"iris eval --prefetch --suite {workspace.suite.resolve()} --model iris-test/no-such-model --revision abc123"
        in err
    )
    assert not list(tmp_path.iterdir())


def test_selfplay_records_lm_eval_results_per_iteration(workspace, tmp_path):
    """``iris selfplay`` with ``evaluation: {kind: lm_eval, ...}`` scores every iteration's
    model in memory and records the summaries and the eval stage in the run directory."""
    import yaml

    from iris.cli import main
    from iris.runs import RunDir, read_json

    data = write_jsonl(
        tmp_path / "pairs.jsonl",
        [
            {"prompt": f"what is the {w} {i}", "real": "the cat sat"}
            for i, w in enumerate(WORDS[:8])
        ],
    )
    config = {
        "model": {"name_or_path": str(workspace.model_dir)},
        "data": {"source": str(data), "n_train": 8},
        "generation": {"max_new_tokens": 4, "batch_size": 8},
        "iterations": 2,
        "training": {
            "loss": "spin",
            "beta": 0.1,
            "per_device_train_batch_size": 4,
            "learning_rate": 1e-3,
            "max_length": 48,
            "save_strategy": "no",
            "report_to": [],
            "disable_tqdm": True,
        },
        "evaluation": {
            "kind": "lm_eval",
            "suite": str(workspace.suite),
            "every": 1,
            "batch_size": 4,
            "bootstrap_iters": 0,
        },
    }
    path = write(tmp_path / "run.yaml", yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["selfplay", "--config", str(path), "--output-dir", str(out)]) == 0
    run = RunDir(out)
    for t in (0, 1):
        assert run.stage_done("eval", t)
        summary = read_json(run.eval_dir(t) / "tiny.summary.json")
        assert set(summary["flat"]) >= {"tiny_mc/acc_norm", "tiny_gen/exact_match", "average"}
        assert (run.eval_dir(t) / "tiny.lm_eval.json").is_file()
