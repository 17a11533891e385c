"""SPIN, SPACE, SPIF, T-SPIN and the registry."""

from __future__ import annotations

import inspect
import math
from types import SimpleNamespace

import mpmath
import pytest
import torch
from hypothesis import given
from strategies import betas, loss_vectors

from iris import reference
from iris.losses import LOSSES, LossOutput, iris_loss, space_loss, spif_loss, spin_loss, tspin_loss

F64 = torch.float64


def sp(x: float) -> float:
    return math.log1p(math.exp(x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# ---------------------------------------------------------------- hand-worked values


def test_spin_hand_worked():
    """β = 0.1, lr⁺ = (1, 2), lr⁻ = (0, 4): margins m = β(lr⁺ − lr⁻) = (0.1, −0.2);
    loss = mean softplus(−m) = (softplus(−0.1) + softplus(0.2))/2;
    weights σ(−m)/2 = (σ(−0.1), σ(0.2))/2 for both responses of each pair."""
    out = spin_loss(
        torch.tensor([1.0, 2.0], dtype=F64), torch.tensor([0.0, 4.0], dtype=F64), beta=0.1
    )
    assert out.loss.item() == pytest.approx((sp(-0.1) + sp(0.2)) / 2, rel=1e-14)
    expected = torch.tensor([sigmoid(-0.1), sigmoid(0.2)], dtype=F64) / 2
    torch.testing.assert_close(out.real_weights, expected)
    torch.testing.assert_close(out.generated_weights, expected)
    assert out.metrics["pair_accuracy"].item() == 0.5


def test_space_hand_worked():
    """μ = 2, β = 1, u⁺ = (0,), u⁻ = (1, −1):
    loss = softplus(log 2 − 0) + 2 · mean(softplus(1 − log 2), softplus(−1 − log 2));
    real weight σ(log 2) = 2/3; synthetic weights 2 σ(±1 − log 2)/2."""
    out = space_loss(torch.tensor([0.0], dtype=F64), torch.tensor([1.0, -1.0], dtype=F64), mu=2.0)
    l2 = math.log(2)
    assert out.loss.item() == pytest.approx(sp(l2) + (sp(1 - l2) + sp(-1 - l2)), rel=1e-14)
    torch.testing.assert_close(out.real_weights, torch.tensor([2 / 3], dtype=F64))
    torch.testing.assert_close(
        out.generated_weights, torch.tensor([sigmoid(1 - l2), sigmoid(-1 - l2)], dtype=F64)
    )


def test_spif_hand_worked():
    """β = 1, c = 2, r⁺ = (1,), r⁻ = (0,):  r̃⁺ = 2 tanh(½);
    loss = −2 e^{r̃⁺} + e^0 + 1 = 2 − 2 e^{2 tanh ½};  real weight 2 e^{r̃⁺} sech²(½);
    synthetic weight 2 e^0 sech²(0) = 2."""
    out = spif_loss(
        torch.tensor([1.0], dtype=F64), torch.tensor([0.0], dtype=F64), beta=1.0, bound=2.0
    )
    rt = 2 * math.tanh(0.5)
    assert out.loss.item() == pytest.approx(2 - 2 * math.exp(rt), rel=1e-14)
    assert out.real_weights.item() == pytest.approx(
        2 * math.exp(rt) / math.cosh(0.5) ** 2, rel=1e-14
    )
    assert out.generated_weights.item() == pytest.approx(2.0, rel=1e-14)
    assert out.metrics["chi2_estimate"].item() == pytest.approx(-out.loss.item())


def test_tspin_hand_worked():
    """a = 1, λ = 0.1, log π(y) = 0, log π(y') = −1, log π(y0) = −3:
    m₁ = 1, m₂ = 2: loss = softplus(−1) + 0.1 softplus(−2);
    weights: real σ(−1), synthetic σ(−1) − 0.1 σ(−2)."""
    out = tspin_loss(*(torch.tensor([v], dtype=F64) for v in (0.0, -1.0, -3.0)))
    assert out.loss.item() == pytest.approx(sp(-1) + 0.1 * sp(-2), rel=1e-14)
    assert out.real_weights.item() == pytest.approx(sigmoid(-1))
    assert out.generated_weights.item() == pytest.approx(sigmoid(-1) - 0.1 * sigmoid(-2))


# ---------------------------------------------------------------- against the reference

BASELINES = {
    "spin": (spin_loss, reference.spin_loss, {"beta": 0.1}),
    "space": (space_loss, reference.space_loss, {"mu": 1.5, "beta": 1.0}),
    "spif": (spif_loss, reference.spif_loss, {"beta": 0.1, "bound": 2.0}),
}


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize(
    "dtype, tol", [(torch.float64, 1e-13), (torch.float32, 1e-5), (torch.bfloat16, 1e-5)]
)
@given(x=loss_vectors(min_size=2, max_size=24))
def test_matches_reference(name, dtype, tol, x):
    fn, ref_fn, kwargs = BASELINES[name]
    x = x.to(dtype)
    real, generated = x[: x.numel() // 2], x[x.numel() // 2 : 2 * (x.numel() // 2)]
    exact = ref_fn(real.double().tolist(), generated.double().tolist(), **kwargs)
    err = abs(mpmath.mpf(fn(real, generated, **kwargs).loss.item()) - exact) / max(abs(exact), 1)
    assert float(err) <= tol


@given(x=loss_vectors(min_size=3, max_size=24))
def test_tspin_matches_reference(x):
    n = x.numel() // 3
    real, generated, proto = x[:n], x[n : 2 * n], x[2 * n : 3 * n]
    exact = reference.tspin_loss(
        real.tolist(), generated.tolist(), proto.tolist(), scale=0.5, lam=0.1
    )
    got = tspin_loss(real, generated, proto, scale=0.5, lam=0.1).loss.item()
    assert float(abs(mpmath.mpf(got) - exact) / max(abs(exact), 1)) <= 1e-13


# ---------------------------------------------------------------- the weight contract


@pytest.mark.parametrize("name", sorted(BASELINES))
@given(x=loss_vectors(min_size=2, max_abs=50.0), beta=betas)
def test_weight_contract_matches_autograd(name, x, beta):
    """real_weights = −(1/β) ∂loss/∂lr⁺ and generated_weights = (1/β) ∂loss/∂lr⁻."""
    fn, _, kwargs = BASELINES[name]
    kwargs = {**kwargs, "beta": beta}
    half = x.numel() // 2
    real = x[:half].clone().requires_grad_(True)
    generated = x[half : 2 * half].clone().requires_grad_(True)
    out = fn(real, generated, **kwargs)
    out.loss.backward()
    torch.testing.assert_close(out.real_weights, -real.grad / beta, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(out.generated_weights, generated.grad / beta, rtol=1e-10, atol=1e-14)


@given(x=loss_vectors(min_size=3, max_abs=50.0))
def test_tspin_weight_contract(x):
    n = x.numel() // 3
    real, generated, proto = (x[i * n : (i + 1) * n].clone().requires_grad_(True) for i in range(3))
    out = tspin_loss(real, generated, proto, scale=0.7, lam=0.3)
    out.loss.backward()
    torch.testing.assert_close(out.real_weights, -real.grad / 0.7, rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(out.generated_weights, generated.grad / 0.7, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_gradcheck_float64(name):
    fn, _, kwargs = BASELINES[name]
    g = torch.Generator().manual_seed(0)
    real = torch.randn(5, dtype=F64, generator=g, requires_grad=True)
    generated = torch.randn(5, dtype=F64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, **kwargs).loss, (real, generated))


# ---------------------------------------------------------------- relations between methods


def test_tspin_without_anchor_is_spin_on_log_probs():
    """λ = 0: T-SPIN is SPIN's logistic loss on policy log-probs with β = a."""
    g = torch.Generator().manual_seed(3)
    real, generated, proto = (torch.randn(7, dtype=F64, generator=g) for _ in range(3))
    a = tspin_loss(real, generated, proto, scale=0.3, lam=0.0)
    b = spin_loss(real, generated, beta=0.3)
    assert a.loss.item() == pytest.approx(b.loss.item(), rel=1e-15)
    torch.testing.assert_close(a.generated_weights, b.generated_weights)


def test_spif_with_a_loose_bound_has_the_weight_profile_of_iris_alpha_2():
    """c → ∞: SPIF's weights are ∝ e^{r⁺} and ∝ e^{2r⁻}, IRIS α = 2's before normalisation."""
    g = torch.Generator().manual_seed(4)
    real, generated = torch.randn(6, dtype=F64, generator=g), torch.randn(6, dtype=F64, generator=g)
    spif = spif_loss(real, generated, beta=1.0, bound=1e7)
    iris = iris_loss(real, generated, alpha=2.0)
    torch.testing.assert_close(
        spif.real_weights / spif.real_weights.sum(), iris.real_weights, rtol=1e-9, atol=0
    )
    torch.testing.assert_close(
        spif.generated_weights / spif.generated_weights.sum(),
        iris.generated_weights,
        rtol=1e-9,
        atol=0,
    )


def test_spif_weights_are_bounded():
    """Every weight ≤ 2 e^{2c}/B whatever the rewards; synthetic weights stay positive."""
    big = torch.tensor([1e4, -1e4, 30.0, -30.0], dtype=F64)
    out = spif_loss(big, big, beta=1.0, bound=2.0)
    assert (out.real_weights <= 2 * math.exp(4) / 4).all() and (
        out.generated_weights <= 2 * math.exp(4) / 4
    ).all()
    assert (out.generated_weights >= 0).all()


@pytest.mark.parametrize("name", ["iris", "spin", "space", "spif"])
def test_uniform_weights_at_the_fixed_point(name):
    """At r ≡ 0 every log-ratio method weights all samples equally (regimes agree in direction)."""
    out = LOSSES[name](
        torch.zeros(5, dtype=F64),
        torch.zeros(5, dtype=F64),
        **({"alpha": 1.3} if name == "iris" else {}),
    )
    for w in (out.real_weights, out.generated_weights):
        torch.testing.assert_close(w, torch.full_like(w, w[0].item()))
        assert w[0].item() > 0


# ---------------------------------------------------------------- SPIN is TRL's sigmoid DPO loss


class _FixedLogProbs(torch.nn.Module):
    """Stands in for a causal LM inside TRL's DPOTrainer._compute_loss: returns per-token
    log-probs whose sums over the completion are the given sequence log-probs."""

    def __init__(self, sequence_logps: torch.Tensor, seq_len: int):
        super().__init__()
        self.sequence_logps = sequence_logps
        self.seq_len = seq_len

    def forward(
        self, input_ids, attention_mask=None, labels=None, fused_lm_head=False, use_cache=False
    ):
        rows = input_ids.shape[0]
        per_token = torch.zeros(rows, self.seq_len - 1, dtype=self.sequence_logps.dtype)
        per_token[:, -1] = self.sequence_logps
        return SimpleNamespace(
            log_probs=per_token,
            entropy=torch.zeros_like(per_token),
            mean_logits=torch.zeros_like(per_token),
            is_top1=torch.zeros_like(per_token, dtype=torch.bool),
        )


def test_spin_equals_trl_sigmoid_dpo_loss():
    """TRL 1.16's own DPOTrainer._compute_loss (loss_type sigmoid, precomputed reference)
    on the same log-probs, with annotated = chosen and synthetic = rejected."""
    from trl.trainer.dpo_trainer import DPOTrainer

    g = torch.Generator().manual_seed(5)
    b, t, beta = 4, 6, 0.1
    policy = 5 * torch.randn(2 * b, dtype=torch.float32, generator=g)
    ref_chosen = 5 * torch.randn(b, dtype=torch.float32, generator=g)
    ref_rejected = 5 * torch.randn(b, dtype=torch.float32, generator=g)
    fake = SimpleNamespace(
        model=SimpleNamespace(training=True),
        accelerator=SimpleNamespace(
            device=torch.device("cpu"), gather_for_metrics=lambda x: x, gather=lambda x: x
        ),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid"],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=0.0,
        use_weighting=False,
        _metrics={"train": __import__("collections").defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.ones(2 * b, t, dtype=torch.long),
        "attention_mask": torch.ones(2 * b, t, dtype=torch.long),
        "completion_mask": torch.ones(2 * b, t, dtype=torch.long),
        "ref_chosen_logps": ref_chosen,
        "ref_rejected_logps": ref_rejected,
    }
    trl_loss = DPOTrainer._compute_loss(
        fake, _FixedLogProbs(policy, t), inputs, return_outputs=False
    )
    ours = spin_loss(policy[:b] - ref_chosen, policy[b:] - ref_rejected, beta=beta).loss
    assert ours.item() == pytest.approx(trl_loss.item(), rel=1e-6)
    # And TRL's logged reward margin is β times the mean log-ratio difference.
    assert fake._metrics["train"]["rewards/margins"][0] == pytest.approx(
        beta * ((policy[:b] - ref_chosen) - (policy[b:] - ref_rejected)).mean().item(), rel=1e-5
    )


# ---------------------------------------------------------------- registry and errors


def test_registry():
    assert set(LOSSES) == {"iris", "spin", "space", "spif", "tspin"}
    g = torch.Generator().manual_seed(6)
    tensors = {
        name: torch.randn(4, generator=g)
        for name in (
            "real_logratios",
            "generated_logratios",
            "real_logps",
            "generated_logps",
            "proto_logps",
        )
    }
    for name, fn in LOSSES.items():
        params = inspect.signature(fn).parameters
        positional = [
            p for p in params.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ]
        keyword = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
        assert positional and all(p.name in tensors for p in positional), name
        assert keyword and all(p.name not in tensors for p in keyword), name
        required = {p.name: 1.0 for p in keyword if p.default is inspect.Parameter.empty}
        out = fn(*(tensors[p.name] for p in positional), **required)
        assert isinstance(out, LossOutput) and out.loss.dim() == 0 and torch.isfinite(out.loss)
        assert all(v.dim() == 0 and not v.requires_grad for v in out.metrics.values()), name


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: spin_loss(torch.zeros(3), torch.zeros(4)), "same shape"),
        (lambda: spin_loss(torch.zeros(3), torch.zeros(3), beta=-1.0), "beta"),
        (lambda: space_loss(torch.zeros(3), torch.zeros(3), mu=0.0), "mu"),
        (lambda: spif_loss(torch.zeros(3), torch.zeros(3), bound=0.0), "bound"),
        (lambda: tspin_loss(torch.zeros(3), torch.zeros(3), torch.zeros(2)), "same shape"),
        (lambda: tspin_loss(torch.zeros(3), torch.zeros(3), torch.zeros(3), lam=-0.1), "lam"),
        (lambda: space_loss(torch.zeros(0), torch.zeros(3)), "empty"),
        (lambda: spif_loss(torch.zeros(3), torch.tensor([float("nan")])), "non-finite"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
