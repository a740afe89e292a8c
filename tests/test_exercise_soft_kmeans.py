"""Exercise 7.1's checker: the right answer passes, a stub is "not done yet", and every typical
mistake of the soft k-means step is recognised and named, with its message and an exercise
number."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fslearn.exercises import check_soft_kmeans
from fslearn.exercises.soft_kmeans import SOFT_KMEANS_MISTAKES, soft_kmeans_spec


def _written_by_hand(support_z, support_y, unlabelled_z, n_way):
    """What a student might write: loops over classes, no package function."""
    tasks = support_z.shape[0]
    out = []
    for t in range(tasks):
        protos = torch.stack([support_z[t][support_y[t] == c].mean(0) for c in range(n_way)])
        d = ((unlabelled_z[t][:, None] - protos[None]) ** 2).sum(-1)
        w = torch.softmax(-d, dim=1)  # [n_unlabelled, n_way]
        rows = []
        for c in range(n_way):
            labelled = support_z[t][support_y[t] == c]
            total = labelled.sum(0) + (w[:, c:c + 1] * unlabelled_z[t]).sum(0)
            rows.append(total / (len(labelled) + w[:, c].sum()))
        out.append(torch.stack(rows))
    return torch.stack(out)


def test_a_right_answer_passes():
    result = check_soft_kmeans(_written_by_hand, quiet=True)
    assert result.passed, result.message


def test_the_stub_is_not_done_yet():
    def stub(support_z, support_y, unlabelled_z, n_way):
        raise NotImplementedError("Write your code here")

    result = check_soft_kmeans(stub, quiet=True)
    assert not result.passed and result.verdicts[0].status == "not_done"


def test_every_mistake_is_recognised_with_its_key_and_the_exercise_number():
    assert len(SOFT_KMEANS_MISTAKES) >= 8
    for mistake in SOFT_KMEANS_MISTAKES:
        result = check_soft_kmeans(mistake.variant, quiet=True)
        verdict = result.verdicts[0]
        assert verdict.status == "wrong", mistake.key
        assert verdict.mistakes == (mistake.key,), (mistake.key, verdict.message)
        assert "[exercise 7.1" in result.message, result.message


def test_the_mistakes_differ_from_the_reference_on_some_case():
    spec = soft_kmeans_spec()
    for mistake in SOFT_KMEANS_MISTAKES:
        assert any(not torch.allclose(mistake.variant(*case.args), spec.reference(*case.args))
                   for case in spec.cases), mistake.key


def test_an_unknown_mistake_is_wrong_without_a_name():
    def halfway(support_z, support_y, unlabelled_z, n_way):
        one_hot = F.one_hot(support_y, n_way).to(support_z.dtype)
        return (one_hot.transpose(1, 2) @ support_z) / 2 + 1

    verdict = check_soft_kmeans(halfway, quiet=True).verdicts[0]
    assert verdict.status == "wrong" and verdict.mistakes == ()
