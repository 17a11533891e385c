"""iris.evaluation without running lm-eval: suites as data, the averaging rule, the registry.

Everything here is pure Python over YAML files and fake lm-eval results dicts; the tests
that run lm-eval on a tiny model are in ``test_evaluation_lm_eval.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
from pathlib import Path

import pytest

from iris.config import ConfigError
from iris.evaluation import (
    BackendUnavailableError,
    Evaluator,
    MissingTokenizerError,
    Suite,
    TaskSpec,
    builtin_suites,
    evaluator_kinds,
    load_suite,
    make_evaluator,
    register_evaluator,
    resolve_suite,
    runs_at,
    summarize,
)
from iris.evaluation import base as evaluation_base
from iris.evaluation.cli import add_eval_arguments, run_eval
from iris.evaluation.suite import BUILTIN_SUITES_DIR, format_summary

# paper-setup.md: task, shots, metric (lm-eval's name for the paper's metric).
IRIS10 = {
    "gsm8k": (5, ("exact_match",), "strict-match"),
    "leaderboard_math_hard": (4, ("exact_match",), "none"),
    "leaderboard_musr": (0, ("acc_norm",), "none"),
    "mmlu": (5, ("acc",), "none"),
    "leaderboard_mmlu_pro": (5, ("acc",), "none"),
    "leaderboard_gpqa": (0, ("acc_norm",), "none"),
    "hellaswag": (10, ("acc_norm",), "none"),
    "winogrande": (5, ("acc",), "none"),
    "leaderboard_bbh": (3, ("acc_norm",), "none"),
    "leaderboard_ifeval": (0, ("prompt_level_strict_acc", "inst_level_strict_acc"), "none"),
}
OPENLLM_V1 = {
    "arc_challenge": (25, ("acc_norm",), "none"),
    "truthfulqa_mc2": (0, ("acc",), "none"),  # lm-eval's "acc" of truthfulqa_mc2 is mc2
    "winogrande": (5, ("acc",), "none"),
    "gsm8k": (5, ("exact_match",), "strict-match"),
    "hellaswag": (10, ("acc_norm",), "none"),
    "mmlu": (5, ("acc",), "none"),
}


# --------------------------------------------------------------------------------------
# Built-in suites
# --------------------------------------------------------------------------------------


def test_every_builtin_suite_file_parses():
    files = sorted(BUILTIN_SUITES_DIR.rglob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        suite = load_suite(path)
        assert suite.name == path.stem
        assert suite.average == "mean"
        assert suite.tasks


@pytest.mark.parametrize(("name", "expected"), [("iris10", IRIS10), ("openllm_v1", OPENLLM_V1)])
def test_builtin_suite_has_the_papers_tasks_shots_and_metrics(name, expected):
    suite = resolve_suite(name)
    assert suite.name == name
    assert set(builtin_suites()) >= {"iris10", "openllm_v1"}
    got = {spec.task: (spec.num_fewshot, spec.metrics, spec.filter) for spec in suite.tasks}
    assert got == expected
    assert list(got) == list(expected)  # the paper's order, for tables
    assert suite.prefetch_command == f"iris eval --prefetch --suite {name}"


# --------------------------------------------------------------------------------------
# The averaging rule
# --------------------------------------------------------------------------------------


def fake_results() -> dict:
    """An lm-eval results dict for a three-task suite (keys as lm-eval 0.4.13 writes them)."""
    return {
        "results": {
            "gsm8k": {
                "exact_match,strict-match": 0.30,
                "exact_match_stderr,strict-match": 0.01,
                "exact_match,flexible-extract": 0.90,  # not the suite's filter: ignored
                "sample_len": 1319,
            },
            "mmlu": {"acc,none": 0.60, "acc_stderr,none": 0.004, "sample_len": 14042},
            "mmlu_stem": {"acc,none": 0.10},  # a subgroup: not a suite task, ignored
            "leaderboard_ifeval": {
                "prompt_level_strict_acc,none": 0.40,
                "prompt_level_strict_acc_stderr,none": 0.02,
                "inst_level_strict_acc,none": 0.50,
                "inst_level_strict_acc_stderr,none": "N/A",
                "sample_len": 541,
            },
        },
        "n-shot": {"gsm8k": 5, "mmlu": 5, "leaderboard_ifeval": 0},
        "versions": {"gsm8k": 3.0, "mmlu": "2", "leaderboard_ifeval": 3.0},
    }


def three_task_suite() -> Suite:
    return Suite(
        "three",
        (
            TaskSpec("gsm8k", num_fewshot=5, metric="exact_match", filter="strict-match"),
            TaskSpec("mmlu", num_fewshot=5, metric="acc", label="MMLU"),
            TaskSpec(
                "leaderboard_ifeval",
                num_fewshot=0,
                metric=["prompt_level_strict_acc", "inst_level_strict_acc"],
            ),
        ),
    )


def test_average_is_the_unweighted_mean_of_each_tasks_metric():
    """gsm8k 0.30 (strict-match, not flexible 0.90), mmlu 0.60 (the group aggregate, not
    mmlu_stem), IFEval (0.40 + 0.50)/2 = 0.45: average (0.30 + 0.60 + 0.45)/3 = 0.45 —
    unweighted, although the tasks have 1319, 14042 and 541 samples."""
    summary = summarize(fake_results(), three_task_suite())
    assert summary["flat"] == {
        "gsm8k/exact_match": 0.30,
        "mmlu/acc": 0.60,
        "leaderboard_ifeval/prompt_level_strict_acc+inst_level_strict_acc": pytest.approx(0.45),
        "average": pytest.approx(0.45),
    }
    assert summary["average"] == pytest.approx((0.30 + 0.60 + 0.45) / 3)
    assert summary["missing"] == []
    gsm8k = summary["tasks"]["gsm8k"]
    assert (gsm8k["value"], gsm8k["stderr"], gsm8k["n"], gsm8k["num_fewshot"]) == (
        0.30,
        0.01,
        1319,
        5,
    )
    assert gsm8k["filter"] == "strict-match" and gsm8k["version"] == 3.0
    assert summary["tasks"]["mmlu"]["label"] == "MMLU"
    ifeval = summary["tasks"]["leaderboard_ifeval"]
    assert math.isnan(ifeval["stderr"])  # no covariance: the mean of two metrics has no stderr
    assert ifeval["metrics"]["prompt_level_strict_acc"] == {"value": 0.40, "stderr": 0.02}
    assert math.isnan(ifeval["metrics"]["inst_level_strict_acc"]["stderr"])  # "N/A" → NaN
    assert "GSM8K" not in format_summary(summary) and "45.00" in format_summary(summary)


@pytest.mark.parametrize(
    "remove",
    [
        ("gsm8k", "exact_match,strict-match"),  # metric absent
        ("leaderboard_ifeval", "inst_level_strict_acc,none"),  # one component absent
        ("mmlu", None),  # whole task absent
    ],
)
def test_a_missing_metric_is_nan_never_zero(remove):
    results = fake_results()
    task, key = remove
    if key is None:
        del results["results"][task]
    else:
        del results["results"][task][key]
    summary = summarize(results, three_task_suite())
    assert math.isnan(summary["average"]) and math.isnan(summary["flat"]["average"])
    missing_keys = [k for k, v in summary["flat"].items() if math.isnan(v)]
    assert missing_keys == [next(k for k in summary["flat"] if k.startswith(task + "/")), "average"]
    assert len(summary["missing"]) == 1 and summary["missing"][0].startswith(task + "/")
    others = [k for k in summary["flat"] if not k.startswith(task + "/") and k != "average"]
    assert all(summary["flat"][k] > 0 for k in others)


def test_non_numeric_metric_values_are_nan():
    results = fake_results()
    results["results"]["gsm8k"]["exact_match,strict-match"] = "N/A"
    summary = summarize(results, three_task_suite())
    assert math.isnan(summary["tasks"]["gsm8k"]["value"]) and summary["missing"]


def test_unspecified_metric_takes_the_first_metric_lm_eval_reports():
    results = {
        "results": {
            "hellaswag": {
                "alias": "hellaswag",
                "acc,none": 0.5,
                "acc_stderr,none": 0.1,
                "acc_norm,none": 0.7,
            }
        },
        "n-samples": {"hellaswag": {"original": 10042, "effective": 100}},
    }
    summary = summarize(results, resolve_suite("hellaswag"))
    assert summary["flat"] == {"hellaswag/acc": 0.5, "average": 0.5}
    assert summary["tasks"]["hellaswag"]["n"] == 100


# --------------------------------------------------------------------------------------
# Suite files
# --------------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_suite_file_keys_are_validated(tmp_path):
    path = write(tmp_path / "s.yaml", "name: s\ntasks:\n  - task: a\n    metrc: acc\n")
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.metrc.*Did you mean 'metric'"):
        load_suite(path)
    write(path, "name: s\ntasks: [a, a]\n")
    with pytest.raises(ConfigError, match="twice"):
        load_suite(path)
    write(path, "name: s\ntasks:\n  - task: a\n    num_fewshot: -1\n")
    with pytest.raises(ConfigError, match="num_fewshot"):
        load_suite(path)
    write(path, "name: s\naverage: median\ntasks: [a]\n")
    with pytest.raises(ConfigError, match="average"):
        load_suite(path)
    write(path, "name: s\ninclude_path: [nowhere]\ntasks: [a]\n")
    with pytest.raises(ConfigError, match="does not exist"):
        load_suite(path)


def test_suite_include_path_is_relative_to_the_file(tmp_path):
    (tmp_path / "tasks").mkdir()
    path = write(tmp_path / "sub" / "s.yaml", "name: s\ninclude_path: [../tasks]\ntasks: [a]\n")
    suite = load_suite(path)
    assert suite.include_path == (str((tmp_path / "tasks").resolve()),)
    assert suite.source == str(path.resolve())
    assert suite.prefetch_command == f"iris eval --prefetch --suite {path.resolve()}"


def test_resolve_suite_accepts_task_names_and_lm_eval_task_yaml(tmp_path):
    adhoc = resolve_suite("gsm8k, hellaswag")
    assert adhoc.task_names == ["gsm8k", "hellaswag"] and adhoc.tasks[0].metric is None
    task_yaml = write(
        tmp_path / "tasks" / "my_task.yaml",
        "task: my_task\ndataset_path: json\nprocess_docs: !function utils.process\n",
    )
    suite = resolve_suite(task_yaml)
    assert suite.task_names == ["my_task"]
    assert suite.include_path == (str((tmp_path / "tasks").resolve()),)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_suite(tmp_path / "missing.yaml")


# --------------------------------------------------------------------------------------
# The loop's evaluator: schedule and registry
# --------------------------------------------------------------------------------------


def test_runs_at_every_k_and_the_last():
    assert [t for t in range(5) if runs_at(t, 5, every=1)] == [0, 1, 2, 3, 4]
    assert [t for t in range(5) if runs_at(t, 5, every=2)] == [1, 3, 4]
    assert [t for t in range(5) if runs_at(t, 5, every=3, final=False)] == [2]
    assert [t for t in range(5) if runs_at(t, 5, every=10)] == [4]
    with pytest.raises(ValueError, match="every"):
        runs_at(0, 5, every=0)
    with pytest.raises(ValueError, match="outside"):
        runs_at(5, 5, every=1)


def test_registry_builds_registered_kinds_without_if_elif():
    class Constant:
        """A stand-in evaluator (what the testbed registers as kind "testbed")."""

        def __init__(self, value: float = 1.0, every: int = 1):
            self.name, self.value, self.every = "constant", value, every

        def should_run(self, iteration, num_iterations):
            return runs_at(iteration, num_iterations, every=self.every)

        def evaluate(self, model_dir, *, iteration, output_dir, model=None, tokenizer=None):
            return {"constant/value": self.value, "average": self.value}

    register_evaluator("_test_constant")(Constant)
    try:
        evaluator = make_evaluator({"kind": "_test_constant", "value": 0.25, "every": 2})
        assert isinstance(evaluator, Evaluator)
        assert evaluator.value == 0.25 and not evaluator.should_run(0, 3)
        assert "_test_constant" in evaluator_kinds() and "lm_eval" in evaluator_kinds()
        register_evaluator("_test_constant")(Constant)  # re-registering the same object: fine
        with pytest.raises(ValueError, match="already registered"):
            register_evaluator("_test_constant")(lambda **kw: None)
    finally:
        evaluation_base._REGISTRY.pop("_test_constant", None)
    with pytest.raises(ConfigError, match="unknown evaluator kind 'nope'"):
        make_evaluator({"kind": "nope"})
    with pytest.raises(ConfigError, match="missing key 'kind'"):
        make_evaluator({"suite": "iris10"})


def test_lm_eval_evaluator_names_its_metrics_when_the_suite_does():
    """Every iris10 task names its metric: the flat keys are known before any run; a task
    scored by lm-eval's first metric is known only from its results (None)."""
    names = make_evaluator({"kind": "lm_eval", "suite": "iris10"}).metric_names()
    suite = resolve_suite("iris10")
    assert names == {f"{s.task}/{'+'.join(s.metrics)}" for s in suite.tasks} | {"average"}
    assert (
        len(names) == 11
        and "leaderboard_ifeval/prompt_level_strict_acc+inst_level_strict_acc" in names
    )
    assert make_evaluator({"kind": "lm_eval", "suite": "gsm8k,hellaswag"}).metric_names() is None


def test_lm_eval_evaluator_config_is_validated_at_construction():
    evaluator = make_evaluator(
        {
            "kind": "lm_eval",
            "suite": "iris10",
            "every": 2,
            "limit": None,
            "batch_size": 8,
            "apply_chat_template": False,
        }
    )
    assert isinstance(evaluator, Evaluator)
    assert evaluator.name == "iris10" and evaluator.settings.batch_size == 8
    assert [t for t in range(4) if evaluator.should_run(t, 4)] == [1, 3]
    with pytest.raises(ConfigError, match="unknown key 'evry'"):
        make_evaluator({"kind": "lm_eval", "evry": 2})
    with pytest.raises(ConfigError, match="every"):
        make_evaluator({"kind": "lm_eval", "every": 0})
    with pytest.raises(ConfigError, match="batch_size"):
        make_evaluator({"kind": "lm_eval", "batch_size": "big"})
    with pytest.raises(ConfigError, match="does not exist"):
        make_evaluator({"kind": "lm_eval", "suite": "no/such/suite.yaml"})


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_vllm_backend_without_vllm_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(BackendUnavailableError, match=r"iris-selfplay\[vllm\]"):
        make_evaluator({"kind": "lm_eval", "backend": "vllm"})
    parser = add_eval_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        ["--model", str(tmp_path), "--backend", "vllm", "--output-dir", str(tmp_path / "out")]
    )
    assert run_eval(args) == 2
    assert "needs vLLM" in capsys.readouterr().err


def test_in_memory_model_needs_the_hf_backend():
    from iris.evaluation.harness import check_backend

    with pytest.raises(BackendUnavailableError, match="in-memory"):
        check_backend("vllm", in_memory=True)


# --------------------------------------------------------------------------------------
# CLI argument handling (no evaluation runs)
# --------------------------------------------------------------------------------------


def test_cli_parses_the_documented_command():
    parser = add_eval_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        [
            "--model",
            "m",
            "--suite",
            "openllm_v1",
            "--limit",
            "10",
            "--output-dir",
            "o",
            "--batch-size",
            "auto:4",
            "--apply-chat-template",
            "--model-args",
            "max_length=4096,trust_remote_code=true",
        ]
    )
    assert (args.limit, args.batch_size, args.apply_chat_template) == (10, "auto:4", True)
    assert args.model_args == {"max_length": 4096, "trust_remote_code": True}
    assert parser.parse_args(["--limit", "0.5"]).limit == 0.5
    assert parser.parse_args(["--prefetch"]).suite == "iris10"


def test_cli_model_directory_without_tokenizer_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    parser = add_eval_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        [
            "--model",
            str(tmp_path / "model"),
            "--suite",
            "iris10",
            "--output-dir",
            str(tmp_path / "o"),
        ]
    )
    assert run_eval(args) == 2
    err = capsys.readouterr().err
    assert "has no tokenizer" in err and "--tokenizer" in err
    assert not (tmp_path / "o").exists()
    from iris.evaluation.harness import check_tokenizer

    with pytest.raises(MissingTokenizerError):
        check_tokenizer(tmp_path / "model")


def test_cli_requires_model_and_output_dir(capsys):
    args = add_eval_arguments(argparse.ArgumentParser()).parse_args(["--suite", "iris10"])
    assert run_eval(args) == 2
    assert "--model and --output-dir required" in capsys.readouterr().err


def test_importing_the_package_does_not_import_lm_eval():
    import subprocess
    import sys

    code = (
        "import sys, iris.evaluation as e; e.make_evaluator; e.resolve_suite('iris10');"
        "print('lm_eval' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
