"""``--precision bf16``: an option that is refused where it cannot run, recorded where it ran,
and whose results stay close to float32's (measured on real episodes and meta-gradients)."""

from __future__ import annotations

import pytest
import torch

from fslearn.checkpoints import load_checkpoint, read_checkpoint
from fslearn.cli import main
from fslearn.evaluation import evaluate
from fslearn.methods import MAML, PrototypicalNetwork
from fslearn.precision import PRECISIONS, bf16_supported, check_precision, computing_in
from fslearn.training import TrainingConfig, train

needs_bf16 = pytest.mark.skipif(not bf16_supported("cpu"),
                                reason="this CPU has no native bfloat16 (AVX-512 BF16 or AMX)")
SMALL = dict(n_way=5, k_shot=1, n_query=2, lr=1e-3, val_every=4, val_episodes=20, val_way=5,
             val_query=2, checkpoint_every=2, seed=3)


def test_unknown_precision_is_refused_in_one_line():
    with pytest.raises(ValueError, match=r"precision must be one of float32, bf16, got 'fp16'"):
        check_precision("fp16", "cpu")
    assert PRECISIONS[0] == "float32"


def test_bf16_is_refused_on_a_cpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    refusal = r"needs native bfloat16.*use --precision float32"
    with pytest.raises(ValueError, match=refusal) as error:
        check_precision("bf16", "cpu")
    assert "\n" not in str(error.value)
    check_precision("float32", "cpu")  # float32 runs everywhere


def test_float32_changes_nothing():
    conv = torch.nn.Conv2d(1, 4, 3)
    with computing_in("float32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
        assert conv(torch.rand(1, 1, 8, 8)).dtype == torch.float32


@needs_bf16
def test_bf16_computes_convolutions_in_bfloat16_and_restores_float32_after():
    conv = torch.nn.Conv2d(1, 4, 3)
    with computing_in("bf16", "cpu"):
        assert conv(torch.rand(1, 1, 8, 8)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")
    assert conv.weight.dtype == torch.float32


@needs_bf16
def test_bf16_meta_gradient_points_where_float32_does(omniglot_small):
    """MAML's second-order meta-gradient under bfloat16 autocast against float32's, on a real
    episode: bfloat16 keeps 8 bits of mantissa, so agreement is by direction and size. Measured
    (2 and 8 tasks, two episodes each): cosine 0.971-0.987, norms within 2%; the first-order
    gradient's cosine with the second-order one is about 0 here, so a lost second-order term
    fails this test."""
    from fslearn.data.episodes import EpisodeSampler

    episode = EpisodeSampler(omniglot_small, 5, 1, 5, tasks=2, seed=0).episode(0)
    gradients = {}
    for precision in PRECISIONS:
        torch.manual_seed(0)
        method = MAML(n_way=5, inner_steps=1, inner_lr=0.4)
        with computing_in(precision, "cpu"):
            method.training_step(episode)
        gradients[precision] = torch.cat([p.grad.flatten() for p in method.parameters()])
        assert gradients[precision].dtype == torch.float32  # the weights' own dtype
    full, low = gradients["float32"], gradients["bf16"]
    cosine = torch.nn.functional.cosine_similarity(full, low, dim=0)
    assert cosine > 0.95, cosine
    assert abs(low.norm() / full.norm() - 1) < 0.05


@needs_bf16
def test_bf16_evaluation_of_a_shipped_model_is_close_to_float32(omniglot_small):
    """The same 200 episodes (of 80 validation classes) in both precisions: predictions differ
    only where a query's two nearest prototypes are nearly tied."""
    method, _ = load_checkpoint("protonet-omniglot")
    results = {p: evaluate(method, omniglot_small, 20, 1, episodes=200, precision=p)
               for p in PRECISIONS}
    assert abs(results["bf16"].accuracy - results["float32"].accuracy) < 0.005, results


@needs_bf16
def test_a_bf16_run_records_its_precision_and_cannot_resume_in_float32(tmp_path, omniglot_small):
    torch.manual_seed(3)
    method = PrototypicalNetwork()
    result = train(method, omniglot_small, TrainingConfig(episodes=4, **SMALL), tmp_path,
                   omniglot_small, progress=False, precision="bf16")
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in result.history)
    assert all(p.dtype == torch.float32 for p in method.parameters())
    for folder in ("last", "best"):
        assert read_checkpoint(tmp_path / folder).metadata["precision"] == "bf16"
    with pytest.raises(ValueError, match="trained in bf16, not float32: resume it with "
                                         "--precision bf16"):
        train(PrototypicalNetwork(), omniglot_small, TrainingConfig(episodes=6, **SMALL),
              tmp_path, omniglot_small, progress=False)


def test_a_float32_run_records_float32(tmp_path, omniglot_small):
    torch.manual_seed(3)
    train(PrototypicalNetwork(), omniglot_small,
          TrainingConfig(episodes=2, **{**SMALL, "val_every": 0}), tmp_path, progress=False)
    assert read_checkpoint(tmp_path / "last").metadata["precision"] == "float32"


@needs_bf16
def test_cli_trains_and_evaluates_in_bf16(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "protonet", "--way", "5", "--shot", "1", "--query", "2",
                 "--episodes", "2", "--val-every", "0", "--checkpoint-every", "2",
                 "--precision", "bf16", "--no-progress"]) == 0
    runs = list((tmp_path / "runs").iterdir())
    assert [run.name for run in runs] == ["protonet-vinyals-5w1s-seed0-bf16"]
    assert "in bf16, into" in capsys.readouterr().err
    assert main(["evaluate", str(runs[0] / "best"), "--way", "5", "--shot", "1",
                 "--episodes", "10", "--precision", "bf16"]) == 0
    assert "Computed in bf16 (--precision bf16)." in capsys.readouterr().out
