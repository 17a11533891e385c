"""The testbed evaluator's exact metrics, and the scoring they rest on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import iris.scoring
from iris.testbed.evaluator import TestbedEvaluator, exact_metrics
from iris.testbed.task import TargetSpec, make_testbed_model

SPEC = TargetSpec(num_prompts=2, num_symbols=3, max_length=3, seed=1)


def _fake_model(monkeypatch, log_probs: np.ndarray) -> None:
    """Make the "model" assign the given log-probabilities to the support, prompt-major."""
    monkeypatch.setattr(iris.scoring, "encoded_log_probs", lambda model, encoded: log_probs.ravel())


def test_model_equal_to_the_target_is_at_distance_zero(monkeypatch):
    target = SPEC.build()
    data = target.support_log_probs()
    _fake_model(monkeypatch, data)
    m = exact_metrics(target, None, None)
    for name in ("forward_kl", "reverse_kl", "invalid_rate", "total_variation"):
        assert m[name] == pytest.approx(0.0, abs=1e-12), name
    assert m["real_loglik"] == pytest.approx(-target.entropy().mean(), rel=1e-12)


def test_model_with_half_its_mass_off_the_support(monkeypatch):
    """p_θ = p_data / 2 on the support: forward KL = log 2, invalid rate ½, reverse KL of the
    renormalised valid part 0, TV = ½ (Σ |p − p/2| + ½) = ½."""
    target = SPEC.build()
    _fake_model(monkeypatch, target.support_log_probs() + math.log(0.5))
    m = exact_metrics(target, None, None)
    assert m["forward_kl"] == pytest.approx(math.log(2), rel=1e-12)
    assert m["invalid_rate"] == pytest.approx(0.5, rel=1e-12)
    assert m["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    assert m["total_variation"] == pytest.approx(0.5, rel=1e-12)


def test_scoring_matches_a_direct_forward_pass(tmp_path):
    """completion log-prob = Σ log softmax(logits) of the completion tokens (incl. <eos>)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from iris.data import format_completion, format_prompt

    target = SPEC.build()
    directory = make_testbed_model(target, tmp_path / "model")
    model, tokenizer = (
        AutoModelForCausalLM.from_pretrained(directory),
        AutoTokenizer.from_pretrained(directory),
    )
    prompt = format_prompt(tokenizer, "p1")
    completion = format_completion(tokenizer, "p1", "s2 s0")
    got = iris.scoring.completion_log_probs(model, tokenizer, [prompt], [completion])[0]
    prompt_ids = tokenizer(prompt)["input_ids"]
    ids = tokenizer(prompt + completion)["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids[len(prompt_ids) :]) == ["s2", "s0", "<eos>"]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    log_probs = torch.log_softmax(logits.double(), -1)
    expected = sum(log_probs[i - 1, ids[i]].item() for i in range(len(prompt_ids), len(ids)))
    assert got == pytest.approx(expected, rel=1e-5)
    # The evaluator on this model gives finite, consistent numbers.
    m = TestbedEvaluator(target=SPEC.to_dict()).score(model, tokenizer)
    assert m["forward_kl"] >= 0 and 0 <= m["invalid_rate"] <= 1 and 0 <= m["total_variation"] <= 1
    assert m["real_loglik"] == pytest.approx(-(target.entropy().mean() + m["forward_kl"]), rel=1e-9)


@pytest.mark.parametrize("max_support", [20_000, 1])  # exact; sampled forward KL
def test_metric_names_are_the_keys_evaluate_reports_as_numbers(tmp_path, max_support):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory = make_testbed_model(SPEC.build(), tmp_path / "model")
    model = AutoModelForCausalLM.from_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    evaluator = TestbedEvaluator(target=SPEC.to_dict(), max_support=max_support, samples=64)
    flat = evaluator.evaluate(
        directory, iteration=0, output_dir=tmp_path / "eval", model=model, tokenizer=tokenizer
    )
    assert {key for key, value in flat.items() if math.isfinite(value)} == evaluator.metric_names()
    assert ("testbed/renyi_gap/alpha=2" in flat) and evaluator.exact == (max_support > 1)
