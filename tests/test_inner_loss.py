"""The inner-loss conventions of the inner-loop methods: fslearn's mean over the support images
and Finn et al.'s sum divided by the shots K (``inner_loss="sum_over_k"``), against a step
computed by hand, against each other, and in old checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from fslearn.checkpoints import load_checkpoint, save_checkpoint
from fslearn.data import Episode
from fslearn.methods import ANIL, MAML, FirstOrderMAML, MetaSGD, Reptile
from fslearn.methods.inner_loop import InnerLoopMethod, inner_loss_scale

SMALL = {"in_channels": 1, "image_size": 8, "hidden_channels": 3, "blocks": 2}
#: a 2-way 2-shot support set of 2-d points, class-major, and the linear model's weights
SUPPORT_X = [[1.0, 2.0], [0.5, -1.0], [-1.0, 0.5], [2.0, 1.0]]
SUPPORT_Y = [0, 0, 1, 1]
WEIGHT, BIAS, ALPHA = [[0.5, -0.2], [0.1, 0.3]], [0.05, -0.1], 0.3


def _hand_step(divisor: float) -> tuple[list[list[float]], list[float]]:
    """One gradient step of size ALPHA on sum_i CE_i / divisor, written out in plain floats:
    dCE_i/dz_i = softmax(z_i) - onehot(y_i), z_i = W x_i + b, so
    dL/dW[c][d] = sum_i (p_ic - [y_i = c]) x_id / divisor."""
    grad_w, grad_b = [[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0]
    for x, y in zip(SUPPORT_X, SUPPORT_Y, strict=True):
        z = [sum(w * xi for w, xi in zip(row, x, strict=True)) + b
             for row, b in zip(WEIGHT, BIAS, strict=True)]
        exps = [math.exp(v) for v in z]
        for c in range(2):
            error = exps[c] / sum(exps) - (1.0 if y == c else 0.0)
            grad_b[c] += error / divisor
            for d in range(2):
                grad_w[c][d] += error * x[d] / divisor
    weight = [[WEIGHT[c][d] - ALPHA * grad_w[c][d] for d in range(2)] for c in range(2)]
    return weight, [BIAS[c] - ALPHA * grad_b[c] for c in range(2)]


def _linear(cls: type[InnerLoopMethod], inner_loss: str, **kwargs) -> InnerLoopMethod:
    """``cls`` on 2-way tasks whose network is the hand example's linear model (a flatten,
    then the head), in float64."""
    model = cls(n_way=2, inner_lr=ALPHA, inner_loss=inner_loss, **SMALL, **kwargs)
    head = nn.Linear(2, 2).double()
    with torch.no_grad():
        head.weight.copy_(torch.tensor(WEIGHT, dtype=torch.float64))
        head.bias.copy_(torch.tensor(BIAS, dtype=torch.float64))
    model.network = nn.Sequential(nn.Flatten(), head)
    return model


def _adapted_linear(model: InnerLoopMethod) -> tuple[torch.Tensor, torch.Tensor]:
    """The adapted weight and bias, read from the adapted model's logits at 0, e1 and e2."""
    support_x = torch.tensor(SUPPORT_X, dtype=torch.float64)
    probes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    logits = model.adapt_and_score(model.network_params(), model.step_sizes(), support_x,
                                   torch.tensor(SUPPORT_Y), probes)
    return (logits[1:] - logits[0]).T, logits[0]


@pytest.mark.parametrize("inner_loss, divisor", [("mean", 4.0), ("sum_over_k", 2.0)])
@pytest.mark.parametrize("cls, kwargs", [
    (MAML, {}), (FirstOrderMAML, {}), (ANIL, {}),
    (Reptile, {"inner_optimizer": "sgd", "inner_batch": None}),
])
def test_one_inner_step_against_the_hand_computation(cls, kwargs, inner_loss, divisor):
    """mean: the cross-entropy summed over the N*K = 4 images / 4; sum_over_k (Finn et al.'s
    utils.xent, differentiated by tf.gradients): summed / K = 2, twice the step."""
    model = _linear(cls, inner_loss, inner_steps=1, **kwargs)
    weight, bias = _adapted_linear(model)
    hand_weight, hand_bias = _hand_step(divisor)
    if cls is ANIL:  # module 1, the head, is all this network has: all of it adapts
        assert set(model.step_sizes()) == {"1.weight", "1.bias"}
    assert torch.allclose(weight, torch.tensor(hand_weight, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(bias, torch.tensor(hand_bias, dtype=torch.float64), atol=1e-12)


def test_meta_sgd_per_parameter_rates_take_the_same_loss():
    model = _linear(MetaSGD, "sum_over_k", inner_steps=1)
    model.learned_step_sizes = nn.ParameterDict({
        "1-weight": nn.Parameter(torch.full((2, 2), ALPHA, dtype=torch.float64)),
        "1-bias": nn.Parameter(torch.full((2,), ALPHA, dtype=torch.float64))})
    weight, bias = _adapted_linear(model)
    hand_weight, hand_bias = _hand_step(2.0)
    assert torch.allclose(weight, torch.tensor(hand_weight, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(bias, torch.tensor(hand_bias, dtype=torch.float64), atol=1e-12)


def test_reptile_mini_batches_are_summed_over_their_own_examples_divided_by_k():
    """A mini-batch of 2 of the 4 images under sum_over_k: 2 / K = 1 times its mean, the same
    step as the mean; the whole set: 4 / 2 = 2 times."""
    model = _linear(Reptile, "sum_over_k", inner_optimizer="sgd")
    assert model.loss_scale(4, batch=2) == 1.0 and model.loss_scale(4) == 2.0
    assert model.loss_scale(4, batch=10) == 2.0  # a batch larger than the set is the set
    assert inner_loss_scale("mean", 7, 3) == 1.0
    with pytest.raises(ValueError, match="inner_loss must be one of mean, sum_over_k"):
        inner_loss_scale("sum", 4, 2)
    with pytest.raises(ValueError, match="inner_loss must be one of mean, sum_over_k"):
        MAML(inner_loss="sum")


def _episode(n_way: int, shots: int = 2, queries: int = 2, seed: int = 0) -> Episode:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_way)
    return Episode(
        support_x=torch.rand(1, n_way * shots, 1, 8, 8, generator=generator, dtype=torch.float64),
        support_y=labels.repeat_interleave(shots)[None],
        query_x=torch.rand(1, n_way * queries, 1, 8, 8, generator=generator, dtype=torch.float64),
        query_y=labels.repeat_interleave(queries)[None],
        classes=labels[None],
        n_way=n_way,
    )


@pytest.mark.parametrize("n_way", [5, 20])
@pytest.mark.parametrize("cls, kwargs", [
    (MAML, {}), (MetaSGD, {}), (ANIL, {}),
    (Reptile, {"inner_optimizer": "sgd", "inner_batch": None, "test_inner_batch": None}),
])
def test_sum_over_k_is_the_mean_with_n_times_the_step(cls, kwargs, n_way):
    """Two test-time steps on a 2-shot support set, through the evaluation path (eval mode,
    no_grad): the authors' convention with alpha equals the mean with N * K / K = N alpha."""
    episode, alpha = _episode(n_way), 2.0**-6  # exact in float32: Meta-SGD starts there
    logits = []
    for inner_loss, lr in (("sum_over_k", alpha), ("mean", n_way * alpha)):
        torch.manual_seed(0)
        model = cls(n_way=n_way, inner_lr=lr, test_inner_steps=2, inner_loss=inner_loss,
                    **SMALL, **kwargs).double().eval()
        with torch.no_grad():
            logits.append(model(episode))
    torch.manual_seed(0)
    unadapted = cls(n_way=n_way, test_inner_steps=0, **SMALL, **kwargs).double().eval()
    with torch.no_grad():
        assert not torch.allclose(logits[0], unadapted(episode), atol=1e-6)
    assert torch.allclose(logits[0], logits[1], rtol=1e-10, atol=1e-12)


def test_the_option_is_recorded_and_reloaded(tmp_path):
    model = MAML(n_way=3, inner_loss="sum_over_k", **SMALL)
    save_checkpoint(tmp_path / "ck", model, {})
    loaded, record = load_checkpoint(tmp_path / "ck")
    assert record["hparams"]["inner_loss"] == "sum_over_k" and loaded.inner_loss == "sum_over_k"
    assert loaded.loss_scale(6) == 3.0


def test_a_checkpoint_from_before_the_option_loads_with_the_mean(tmp_path):
    """A record saved before inner_loss and architecture existed (several shipped ones) has no
    such keys: it rebuilds with the mean and fslearn's network, as it was trained."""
    save_checkpoint(tmp_path / "old", MAML(n_way=3, inner_loss="sum_over_k", **SMALL), {})
    record_file = tmp_path / "old" / "checkpoint.json"
    record = json.loads(record_file.read_text())
    for key in ("inner_loss", "architecture"):
        del record["hparams"][key]
    record_file.write_text(json.dumps(record))
    method, record = load_checkpoint(tmp_path / "old")
    assert "inner_loss" not in record["hparams"] and "architecture" not in record["hparams"]
    assert method.inner_loss == "mean" and method.architecture == "conv4"
    assert method.loss_scale(25) == 1.0
    # a shipped record from before the option (the sine-wave MAML) loads the same way
    shipped, shipped_record = load_checkpoint("maml-sinusoid")
    assert "inner_loss" not in shipped_record["hparams"] and shipped.inner_loss == "mean"
