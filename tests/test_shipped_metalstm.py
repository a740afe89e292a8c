"""The shipped Meta-LSTM (issue 24): the authors' Omniglot 5-way 1-shot configuration, its
record, and its figures reproduced."""

from __future__ import annotations

from conftest import shipped_figures_reproduced, shipped_training_record


def test_shipped_metalstm_records_its_recipe():
    _, record = shipped_training_record("metalstm-omniglot-5way", "metalstm")
    hparams = record["hparams"]
    # the authors' train-omniglot-1shot-5class config: 15 updates on the 5 support images, an
    # LSTM of 20 units, the meta-gradient clipped to 0.25; MAML's Conv4 as the learner
    assert (hparams["inner_steps"], hparams["inner_batch"]) == (15, None)
    assert hparams["hidden_size"] == 20
    assert hparams["max_grad_norm"] == 0.25 and hparams["hidden_channels"] == 64
    config = record["config"]
    assert (config["n_way"], config["k_shot"], config["batch_size"]) == (5, 1, 1)
    assert config["lr"] == 1e-3 and config["lr_gamma"] == 1.0


def test_shipped_metalstm_reproduces_its_figures():
    """The first 20 of the stored 1000 5-way 1-shot test episodes, re-evaluated, agree with the
    stored mean within 6 points; no paper figure is set beside them (mini-ImageNet only)."""
    rows = shipped_figures_reproduced("metalstm-omniglot-5way", {(5, 1), (5, 5)}, episodes=20,
                                      tolerance=0.06)
    assert all(r.get("paper_accuracy") is None for r in rows.values())
