"""Exercise 7.2's checker: the right answer passes, a stub is "not done yet", every typical
mistake of the FedAvg server step is recognised and named, and changing the clients' arrays in
place is caught even when the result is right."""

from __future__ import annotations

import numpy as np
import torch

from fslearn.exercises import check_fedavg_step
from fslearn.exercises.fedavg_step import FEDAVG_MISTAKES, fedavg_step_spec


def _written_by_hand(client_weights, num_examples):
    """What a student might write: a loop over the clients, in NumPy."""
    weights = client_weights.numpy()
    counts = num_examples.numpy()
    total = np.zeros(weights.shape[1])
    for row, count in zip(weights, counts, strict=True):
        total = total + row * (count / counts.sum())
    return torch.from_numpy(total)


def test_a_right_answer_passes():
    result = check_fedavg_step(_written_by_hand, quiet=True)
    assert result.passed, result.message


def test_a_float32_answer_passes():
    def in_float32(client_weights, num_examples):
        shares = num_examples.float() / num_examples.sum()
        return (shares[:, None] * client_weights.float()).sum(0)

    assert check_fedavg_step(in_float32, quiet=True).passed


def test_the_reference_is_the_weighted_average_by_hand():
    spec = fedavg_step_spec()
    by_hand = spec.cases[0]
    assert torch.allclose(spec.reference(*by_hand.args),
                          torch.tensor([2.5, -0.25], dtype=torch.float64))


def test_the_stub_is_not_done_yet():
    def stub(client_weights, num_examples):
        raise NotImplementedError("Write your code here")

    result = check_fedavg_step(stub, quiet=True)
    assert not result.passed and result.verdicts[0].status == "not_done"


def test_every_mistake_is_recognised_with_its_key_and_the_exercise_number():
    keys = {mistake.key for mistake in FEDAVG_MISTAKES}
    assert {"unweighted_mean", "not_normalised", "inverse_counts", "softmax_counts"} <= keys
    for mistake in FEDAVG_MISTAKES:
        result = check_fedavg_step(mistake.variant, quiet=True)
        verdict = result.verdicts[0]
        assert verdict.status == "wrong", mistake.key
        assert verdict.mistakes == (mistake.key,), (mistake.key, verdict.message)
        assert "[exercise 7.2" in result.message, result.message


def test_the_mistakes_differ_from_the_reference_on_some_case():
    spec = fedavg_step_spec()
    for mistake in FEDAVG_MISTAKES:
        assert any(not torch.allclose(mistake.variant(*case.args), spec.reference(*case.args))
                   for case in spec.cases), mistake.key


def test_changing_the_clients_arrays_in_place_is_caught_though_the_result_is_right():
    def scales_in_place(client_weights, num_examples):
        client_weights *= (num_examples / num_examples.sum())[:, None]
        return client_weights.sum(0)

    verdict = check_fedavg_step(scales_in_place, quiet=True).verdicts[0]
    assert verdict.status == "wrong" and verdict.mistakes == ("modified_input",)
    assert "client_weights" in verdict.message


def test_an_in_place_division_of_the_integer_counts_gets_a_hint():
    def divides_counts(client_weights, num_examples):
        num_examples /= num_examples.sum()
        return (num_examples[:, None] * client_weights).sum(0)

    verdict = check_fedavg_step(divides_counts, quiet=True).verdicts[0]
    assert verdict.status == "error"
    assert "num_examples / num_examples.sum()" in verdict.message


def test_an_unknown_mistake_is_wrong_without_a_name():
    def halfway(client_weights, num_examples):
        return client_weights[0] + 1

    verdict = check_fedavg_step(halfway, quiet=True).verdicts[0]
    assert verdict.status == "wrong" and verdict.mistakes == ()
