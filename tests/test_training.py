"""The training loop: learning, resuming, validation and checkpoints."""

from __future__ import annotations

import pytest
import torch
from conftest import train_interrupted_and_straight

from fslearn.checkpoints import read_checkpoint
from fslearn.evaluation import evaluate
from fslearn.methods import PrototypicalNetwork
from fslearn.training import TrainingConfig, learning_rate, train

SMALL = dict(n_way=5, k_shot=1, n_query=2, lr=1e-3, lr_step=3, lr_gamma=0.5, val_every=4,
             val_episodes=20, val_way=5, val_query=2, checkpoint_every=2, seed=3)


def _fresh(seed: int = 3) -> PrototypicalNetwork:
    torch.manual_seed(seed)
    return PrototypicalNetwork()


def test_config_round_trips_through_its_dict_and_rejects_unknown_keys():
    config = TrainingConfig(n_way=20, k_shot=5, lr=0.01, val_shot=1)
    assert TrainingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="n_ways"):
        TrainingConfig.from_dict({"n_ways": 5})


def test_learning_rate_steps():
    config = TrainingConfig(lr=1.0, lr_step=10, lr_gamma=0.5)
    assert [learning_rate(config, e) for e in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, omniglot_small):
    train_interrupted_and_straight(lambda seed: _fresh(seed), omniglot_small,
                                   TrainingConfig(episodes=9, **SMALL), tmp_path, omniglot_small,
                                   crash_after=6)


def test_best_checkpoint_is_the_best_validation(tmp_path, omniglot_small):
    result = train(_fresh(), omniglot_small, TrainingConfig(episodes=8, **SMALL), tmp_path,
                   omniglot_small, progress=False)
    validated = [h for h in result.history if "val_accuracy" in h]
    assert [h["episode"] for h in validated] == [4, 8]
    best = max(validated, key=lambda h: h["val_accuracy"])
    record = read_checkpoint(tmp_path / "best").metadata
    assert record["episode"] == best["episode"]
    assert record["metrics"]["val"]["accuracy"] == best["val_accuracy"]
    assert result.best_val_accuracy == best["val_accuracy"]


def test_training_improves_accuracy(tmp_path, omniglot_small):
    method = _fresh(0)
    before = evaluate(method, omniglot_small, 5, 1, n_query=5, episodes=100, seed=1)
    config = TrainingConfig(n_way=20, k_shot=1, n_query=5, episodes=60, val_every=0,
                            checkpoint_every=60, seed=0)
    train(method, omniglot_small, config, tmp_path, progress=False)
    after = evaluate(method, omniglot_small, 5, 1, n_query=5, episodes=100, seed=1)
    assert after.accuracy > before.accuracy + 0.05, (before.accuracy, after.accuracy)


def test_resuming_with_another_config_is_refused(tmp_path, omniglot_small):
    train(_fresh(), omniglot_small, TrainingConfig(episodes=2, **SMALL), tmp_path, progress=False)
    changed = {**SMALL, "lr": 0.5}
    with pytest.raises(ValueError, match="another config"):
        train(_fresh(), omniglot_small, TrainingConfig(episodes=4, **changed), tmp_path,
              progress=False)
    # ...unless asked to start over
    result = train(_fresh(), omniglot_small, TrainingConfig(episodes=2, **changed), tmp_path,
                   resume=False, progress=False)
    assert result.episodes == 2


def test_a_longer_run_continues_a_finished_one(tmp_path, omniglot_small):
    train(_fresh(), omniglot_small, TrainingConfig(episodes=4, **SMALL), tmp_path, progress=False)
    result = train(_fresh(), omniglot_small, TrainingConfig(episodes=6, **SMALL), tmp_path,
                   progress=False)
    assert result.episodes == 6 and result.history[-1]["episode"] == 6


def test_impossible_validation_fails_before_training(tmp_path, omniglot_small):
    config = TrainingConfig(episodes=2, **{**SMALL, "val_way": 100000})
    with pytest.raises(ValueError, match=r"val_way \(--val-way\)=100000"):
        train(_fresh(), omniglot_small, config, tmp_path, omniglot_small, progress=False)
    assert not (tmp_path / "last").exists()


@pytest.mark.parametrize("field,value", [("episodes", 0), ("n_way", -1), ("lr", 0.0),
                                         ("lr_gamma", 1.5), ("val_every", -1)])
def test_bad_config_values(field, value):
    with pytest.raises(ValueError, match=field):
        TrainingConfig(**{field: value})


def test_divergence_is_reported(tmp_path, omniglot_small):
    method = _fresh()
    with torch.no_grad():
        method.backbone.features[0][0].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="learning rate"):
        train(method, omniglot_small, TrainingConfig(episodes=2, **SMALL), tmp_path,
              progress=False)


def test_a_method_without_parameters_cannot_be_trained(tmp_path, omniglot_small):
    from fslearn.methods import build_method

    with pytest.raises(ValueError, match="no trainable parameters"):
        train(build_method("pixel_nn"), omniglot_small, TrainingConfig(episodes=2, **SMALL),
              tmp_path, progress=False)
