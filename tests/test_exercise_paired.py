"""Exercise 8.1: the checker ``check_paired_difference`` accepts right answers, says "not done
yet" for the stub, recognises each typical mistake with its own hint, and reports exceptions."""

from __future__ import annotations

import math

import pytest
import torch

from fslearn.exercises import check_paired_difference
from fslearn.exercises.paired_difference import PAIRED_MISTAKES, paired_difference_spec
from fslearn.results_table import paired_difference as reference


def by_hand(a, b):
    d = [x - y for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    mean = sum(d) / len(d)
    s = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    return mean, 1.96 * s / math.sqrt(len(d))


def test_right_answers_pass():
    assert check_paired_difference(reference, quiet=True).passed
    assert check_paired_difference(by_hand, quiet=True).passed

    def numpy_way(a, b):
        return [float((a - b).mean()), float(1.96 * (a - b).numpy().std(ddof=1) / len(a) ** 0.5)]

    assert check_paired_difference(numpy_way, quiet=True).passed


def test_the_stub_is_not_done_yet():
    def stub(a, b):
        raise NotImplementedError("Write your code here")

    result = check_paired_difference(stub, quiet=True)
    assert not result.passed and "not done yet" in result.message.lower()


@pytest.mark.parametrize("mistake", PAIRED_MISTAKES, ids=[m.key for m in PAIRED_MISTAKES])
def test_each_mistake_gets_its_hint(mistake):
    result = check_paired_difference(mistake.variant, quiet=True)
    assert not result.passed
    assert result.mistakes == (mistake.key,), result.message
    assert mistake.hint.split(":")[0] in result.message


def test_every_mistake_differs_from_the_reference_on_some_case():
    spec = paired_difference_spec()
    for mistake in PAIRED_MISTAKES:
        assert any(
            not torch.allclose(
                torch.tensor(mistake.variant(*case.args)),
                torch.tensor(reference(*case.args)),
                rtol=1e-4,
                atol=1e-9,
            )
            for case in spec.cases
        ), mistake.key


def test_an_exception_is_a_verdict():
    def broken(a, b):
        return float((a - b).mean()), float((a - b).std(ddof=1))

    result = check_paired_difference(broken, quiet=True)
    assert not result.passed and "ddof" in result.message
