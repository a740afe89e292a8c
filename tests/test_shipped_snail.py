"""The shipped SNAIL (issue 24's first checkpoint of it): one 5-way model trained with K drawn
from 1 to 5, its record, and its figures reproduced."""

from __future__ import annotations

import pytest
from conftest import shipped_figures_reproduced, shipped_training_record


def test_shipped_snail_records_its_recipe():
    _, record = shipped_training_record("snail-omniglot-5way", "snail")
    assert record["hparams"]["n_way"] == 5 and record["hparams"]["max_shot"] == 5
    assert record["config"]["batch_size"] == 16


def test_shipped_snail_reproduces_its_figures():
    """The first 40 of the stored 1000 5-way 1-shot test episodes, re-evaluated, agree with the
    stored mean within 4 points; the stored figures sit beside Mishra et al.'s."""
    rows = shipped_figures_reproduced("snail-omniglot-5way", {(5, 1), (5, 5)}, episodes=40,
                                      tolerance=0.04)
    assert rows[(5, 1)]["paper_accuracy"] == pytest.approx(0.9907)
    assert rows[(5, 5)]["paper_accuracy"] == pytest.approx(0.9978)
