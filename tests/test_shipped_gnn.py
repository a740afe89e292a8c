"""The shipped graph neural network (issue 24): one 5-way 1-shot model trained with the authors'
episodes, its record, and its figures reproduced."""

from __future__ import annotations

import pytest
from conftest import shipped_figures_reproduced, shipped_training_record


def test_shipped_gnn_records_its_recipe():
    _, record = shipped_training_record("gnn-omniglot-5way", "gnn")
    assert record["hparams"]["n_way"] == 5 and record["hparams"]["query_label"] == "uniform"
    config = record["config"]
    # the authors' 5-way 1-shot episodes: 60 tasks of one query per class (300 graphs), Adam 1e-3
    assert (config["n_way"], config["k_shot"], config["n_query"]) == (5, 1, 1)
    assert config["batch_size"] == 60 and config["lr"] == pytest.approx(1e-3)


def test_shipped_gnn_reproduces_its_figures():
    """The first 40 of the stored 1000 5-way 1-shot test episodes, re-evaluated, agree with the
    stored mean within 4 points; the stored figures sit beside Garcia and Bruna's."""
    # one model per N: no 20-way figures
    rows = shipped_figures_reproduced("gnn-omniglot-5way", {(5, 1), (5, 5)}, episodes=40,
                                      tolerance=0.04)
    assert rows[(5, 1)]["paper_accuracy"] == pytest.approx(0.992)
    assert rows[(5, 5)]["paper_accuracy"] == pytest.approx(0.997)
