r"""Exercise 4.2, the attention of Matching Networks (Vinyals et al., 2016): ``attention`` and
``predict``.

* ``attention(query_z, support_z)``: float ``[tasks, n_query, D]`` and ``[tasks, n_support, D]``
  -> ``[tasks, n_query, n_support]``, the softmax over the support set of the cosine
  similarities, :math:`a(\hat x, x_i) = \exp c(\hat z, z_i) / \sum_j \exp c(\hat z, z_j)`. The
  reference is :func:`fslearn.methods.matching.cosine_similarity` followed by a softmax over the
  last axis, what :func:`~fslearn.methods.matching.matching_log_probabilities` does (in log
  space). The cases have several tasks and queries, numbers of queries, support images and
  dimensions that differ, and embeddings of different lengths, so that a softmax or a
  normalisation over the wrong axis, a missing normalisation, or the Euclidean distance all show.
* ``predict(attention, support_y, n_way)``: ``[tasks, n_query, n_support]`` and int64
  ``[tasks, n_support]`` -> ``[tasks, n_query, n_way]``, the attention-weighted sum of the
  one-hot support labels, :math:`\hat y = \sum_i a(\hat x, x_i)\, y_i`. The reference is the
  package's :func:`~fslearn.methods.matching.matching_log_probabilities` given the log of the
  attention (its log-softmax of a log-attention whose rows sum to 1 is that log-attention
  itself), exponentiated. The cases have labels in class-major, shuffled and interleaved order,
  a different order per task, and more than one shot (where a mean per class differs from the
  sum).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_given
from fslearn.methods.matching import cosine_similarity as _cosine_similarity
from fslearn.methods.matching import matching_log_probabilities as _log_probabilities
from fslearn.methods.siamese import class_means as _class_means

__all__ = [
    "ATTENTION_MISTAKES",
    "PREDICT_MISTAKES",
    "attention_spec",
    "check_matching_attention",
    "predict_spec",
    "reference_attention",
    "reference_predict",
]

_ATTENTION_NAMES = ("query_z", "support_z")
_PREDICT_NAMES = ("attention", "support_y", "n_way")


def reference_attention(query_z: Tensor, support_z: Tensor) -> Tensor:
    """The package's attention: a softmax over the support set of its cosine similarities."""
    return _cosine_similarity(query_z, support_z).softmax(dim=-1)


def reference_predict(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    """The package's prediction ``y_hat`` from an attention whose rows sum to 1."""
    return _log_probabilities(attention.log(), support_y, n_way).exp()


# --------------------------------------------------------------------------------------------
# attention


def _normalised_dot(query_z: Tensor, support_z: Tensor, query_dim: int | None,
                    support_dim: int | None) -> Tensor:
    """``q . s`` after normalising each side over an axis (None: not normalised)."""
    if query_dim is not None:
        query_z = F.normalize(query_z, dim=query_dim)
    if support_dim is not None:
        support_z = F.normalize(support_z, dim=support_dim)
    return query_z @ support_z.transpose(1, 2)


def _distances(query_z: Tensor, support_z: Tensor) -> Tensor:
    return (query_z.unsqueeze(2) - support_z.unsqueeze(1)).pow(2).sum(-1)  # squared


_NORMALISE_HINT = (
    "the cosine similarity divides the dot product by the lengths of *both* vectors, "
    "c(q, s) = q.s / (||q|| ||s||): {which} Normalise each embedding over its last axis, "
    "`F.normalize(query_z, dim=-1)` and `F.normalize(support_z, dim=-1)`, then take the dot "
    "products `q @ s.transpose(1, 2)`.")
_WRONG_AXIS_HINT = (
    "you normalised over the wrong axis: each *embedding* (a row of D numbers, the last axis) "
    "must have length 1, `F.normalize(z, dim=-1)`. Over axis 1 you divided each coordinate by "
    "its length across the queries (or the support images) instead.")
_EUCLIDEAN_HINT = (
    "that is a softmax over minus the Euclidean distances, what a Prototypical Network would "
    "use; Matching Networks compare by the cosine similarity c(q, s) = q.s / (||q|| ||s||), "
    "which sees only the angle between the embeddings.")

ATTENTION_MISTAKES = (
    Mistake("no_softmax",
            "these are the cosine similarities themselves; the attention is their softmax over "
            "the support set, `.softmax(dim=-1)`: positive weights that sum to 1 for each query.",
            _cosine_similarity),
    Mistake("softmax_wrong_axis",
            "your softmax runs over the queries (axis 1): each *query* spreads its attention over "
            "the support set, so the weights of one row, [t, q, :], must sum to 1: "
            "`.softmax(dim=-1)`.",
            lambda q, s: _cosine_similarity(q, s).softmax(dim=1)),
    Mistake("dot_product",
            "you took the softmax of plain dot products q.s; Matching Networks use the cosine "
            "similarity, the dot product of the embeddings normalised to length 1, "
            "`F.normalize(z, dim=-1)`. Without it, long embeddings dominate the attention.",
            lambda q, s: _normalised_dot(q, s, None, None).softmax(dim=-1)),
    Mistake("only_query_normalised",
            _NORMALISE_HINT.format(which="you normalised the queries but not the support "
                                         "embeddings."),
            lambda q, s: _normalised_dot(q, s, -1, None).softmax(dim=-1)),
    Mistake("only_support_normalised",
            _NORMALISE_HINT.format(which="you normalised the support embeddings but not the "
                                         "queries."),
            lambda q, s: _normalised_dot(q, s, None, -1).softmax(dim=-1)),
    Mistake("normalised_wrong_axis", _WRONG_AXIS_HINT,
            lambda q, s: _normalised_dot(q, s, 1, 1).softmax(dim=-1)),
    Mistake("normalised_wrong_axis", _WRONG_AXIS_HINT,
            lambda q, s: _normalised_dot(q, s, 1, -1).softmax(dim=-1)),
    Mistake("normalised_wrong_axis", _WRONG_AXIS_HINT,
            lambda q, s: _normalised_dot(q, s, -1, 1).softmax(dim=-1)),
    Mistake("euclidean", _EUCLIDEAN_HINT,
            lambda q, s: (-_distances(q, s)).softmax(dim=-1)),
    Mistake("euclidean", _EUCLIDEAN_HINT,
            lambda q, s: (-_distances(q, s).sqrt()).softmax(dim=-1)),
    Mistake("exp_not_normalised",
            "you took the exponentials of the similarities but did not divide by their sum over "
            "the support set: the attention of each query must sum to 1 (`.softmax(dim=-1)` does "
            "both).",
            lambda q, s: _cosine_similarity(q, s).exp()),
    Mistake("log_softmax",
            "these are the logarithms of the attention weights (`log_softmax`); return the "
            "weights themselves, `.softmax(dim=-1)`, which are >= 0 and sum to 1.",
            lambda q, s: _cosine_similarity(q, s).log_softmax(dim=-1)),
    Mistake("sigmoid",
            "a sigmoid squashes each similarity on its own; the attention compares a query's "
            "similarities with each other, with a softmax over the support set (`.softmax("
            "dim=-1)`), so that they sum to 1.",
            lambda q, s: _cosine_similarity(q, s).sigmoid()),
    Mistake("transposed_output",
            "the axes of the result are swapped: it must be [tasks, n_query, n_support], one row "
            "per query (`q @ s.transpose(1, 2)`, not `s @ q.transpose(1, 2)`), with the softmax "
            "over the last axis.",
            lambda q, s: _cosine_similarity(q, s).softmax(dim=-1).transpose(1, 2)),
    Mistake("transposed_output",
            "the axes of the result are swapped: it must be [tasks, n_query, n_support], one row "
            "per query (`q @ s.transpose(1, 2)`, not `s @ q.transpose(1, 2)`), with the softmax "
            "over the support set.",
            lambda q, s: _cosine_similarity(q, s).softmax(dim=1).transpose(1, 2)),
)


def _embeddings(tasks: int, count: int, dim: int, generator: torch.Generator) -> Tensor:
    """Rounded random embeddings of clearly different lengths (a factor 0.5 to 3 per vector)."""
    directions = torch.randn(tasks, count, dim, generator=generator, dtype=torch.float64)
    lengths = 0.5 + 2.5 * torch.rand(tasks, count, 1, generator=generator, dtype=torch.float64)
    return (directions * lengths).mul(4).round().div(4)


def _attention_case(description: str, tasks: int, n_query: int, n_support: int, dim: int,
                    seed: int) -> Case:
    generator = torch.Generator().manual_seed(seed)
    return Case(description, (_embeddings(tasks, n_query, dim, generator),
                              _embeddings(tasks, n_support, dim, generator)), _ATTENTION_NAMES)


def _attention_cases() -> tuple[Case, ...]:
    by_hand = Case("1 task, 2 queries, 3 support images in 2-D",
                   (torch.tensor([[[2.0, 0.0], [1.0, 1.0]]], dtype=torch.float64),
                    torch.tensor([[[3.0, 0.0], [0.0, 0.5], [-1.0, 1.0]]], dtype=torch.float64)),
                   _ATTENTION_NAMES)
    return (
        by_hand,
        _attention_case("2 tasks, 3 queries, 5 support images in 4-D", 2, 3, 5, 4, seed=31),
        _attention_case("1 task, 4 queries, 6 support images in 8-D", 1, 4, 6, 8, seed=32),
        _attention_case("3 tasks, 2 queries, 4 support images in 3-D", 3, 2, 4, 3, seed=33),
    )


# --------------------------------------------------------------------------------------------
# predict


def _one_hot(support_y: Tensor, n_way: int, like: Tensor) -> Tensor:
    return F.one_hot(support_y, n_way).to(like.dtype)  # [tasks, n_support, n_way]


def _nearest_neighbour(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    nearest = support_y.gather(1, attention.argmax(dim=-1))  # [tasks, n_query]
    return _one_hot(nearest, n_way, attention)


def _max_per_class(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    one_hot = _one_hot(support_y, n_way, attention)
    return (attention.unsqueeze(-1) * one_hot.unsqueeze(1)).amax(dim=2)


def _class_major(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    tasks, n_query, n_support = attention.shape
    return attention.reshape(tasks, n_query, n_way, n_support // n_way).sum(-1)


def _interleaved(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    tasks, n_query, n_support = attention.shape
    return attention.reshape(tasks, n_query, n_support // n_way, n_way).sum(-2)


def _first_task_labels(attention: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    return reference_predict(attention, support_y[:1].expand_as(support_y), n_way)


_SORTED_HINT = (
    "your prediction is right only when the support set is in one fixed order ({order}); the "
    "labels may come in any order (see test case 2). Let the labels say which support image "
    "counts for which class: the one-hot matrix `F.one_hot(support_y, n_way)`, [tasks, n_support, "
    "n_way], does it in one matrix product, `attention @ one_hot` (mind its dtype: int64).")

PREDICT_MISTAKES = (
    Mistake("nearest_neighbour",
            "you gave each query the label of its single most attended support image, a hard "
            "nearest neighbour (all its probability on one class). Matching Networks take a "
            "*soft* vote: every support image adds its attention weight to its own class, "
            "y_hat = sum_i a(x, x_i) y_i with one-hot y_i.",
            _nearest_neighbour),
    Mistake("mean_per_class",
            "you averaged the attention weights of each class's support images; the prediction "
            "*sums* them, y_hat = sum_i a(x, x_i) y_i, so that it is a probability distribution "
            "over the classes (it sums to 1, as the attention does). The mean divides each class "
            "by its number of shots.",
            _class_means),
    Mistake("max_per_class",
            "you kept the largest attention weight of each class; the prediction sums the "
            "weights of all the class's support images, y_hat = sum_i a(x, x_i) y_i.",
            _max_per_class),
    Mistake("sorted_labels", _SORTED_HINT.format(order="all of class 0, then all of class 1, "
                                                      "..."), _class_major),
    Mistake("sorted_labels", _SORTED_HINT.format(order="classes 0, 1, ..., N-1, then again"),
            _interleaved),
    Mistake("same_labels_every_task",
            "you used the labels of the first task for every task; each task has its own "
            "labels, in its own order: use `support_y[t]` for task t (or all of `support_y` "
            "with `F.one_hot`).",
            _first_task_labels),
    Mistake("softmax_again",
            "you applied a softmax to the weighted sum of the labels. The attention is already a "
            "softmax, so y_hat = sum_i a(x, x_i) y_i is already a probability distribution: "
            "return it as it is.",
            lambda a, y, n: reference_predict(a, y, n).softmax(dim=-1)),
    Mistake("log_probabilities",
            "these are log-probabilities; return the probabilities y_hat themselves (the model's "
            "`forward` returns their log for the cross-entropy, but that is not asked here).",
            lambda a, y, n: reference_predict(a, y, n).log()),
    Mistake("label_values",
            "you weighted the label *numbers* (0, 1, 2, ...) by the attention, which gives one "
            "number per query. Labels are one-hot vectors here, `F.one_hot(support_y, n_way)`: "
            "the weighted sum gives one probability per class, [tasks, n_query, n_way].",
            lambda a, y, n: a @ y.to(a.dtype).unsqueeze(-1)),
    Mistake("label_values",
            "you weighted the label *numbers* (0, 1, 2, ...) by the attention, which gives one "
            "number per query. Labels are one-hot vectors here, `F.one_hot(support_y, n_way)`: "
            "the weighted sum gives one probability per class, [tasks, n_query, n_way].",
            lambda a, y, n: (a * y.to(a.dtype).unsqueeze(1)).sum(-1)),
    Mistake("transposed_output",
            "the axes of the result are swapped: return [tasks, n_query, n_way], one row per "
            "query.",
            lambda a, y, n: reference_predict(a, y, n).transpose(1, 2)),
)


def _shuffled(tasks: int, n_way: int, k_shot: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    ordered = torch.arange(n_way).repeat_interleave(k_shot)
    return [ordered[torch.randperm(n_way * k_shot, generator=generator)].tolist()
            for _ in range(tasks)]


def _predict_case(description: str, labels: list[list[int]], n_way: int, n_query: int,
                  seed: int) -> Case:
    support_y = torch.tensor(labels, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(*support_y.shape[:1], n_query, support_y.shape[1],
                             generator=generator, dtype=torch.float64)
    return Case(description, (logits.softmax(dim=-1), support_y, n_way), _PREDICT_NAMES)


def _predict_cases() -> tuple[Case, ...]:
    by_hand = Case("1 task, 2 queries, 2 classes of 2 support images in class-major order",
                   (torch.tensor([[[0.5, 0.25, 0.125, 0.125], [0.125, 0.25, 0.375, 0.25]]],
                                 dtype=torch.float64), torch.tensor([[0, 0, 1, 1]]), 2),
                   _PREDICT_NAMES)
    shuffled = Case("1 task, 3 queries, 3 classes of 2 support images, labels in shuffled order",
                    (torch.tensor([[[0.25, 0.125, 0.125, 0.25, 0.125, 0.125],
                                    [0.0625, 0.5, 0.0625, 0.125, 0.125, 0.125],
                                    [0.125, 0.125, 0.375, 0.0625, 0.25, 0.0625]]],
                                  dtype=torch.float64), torch.tensor([[2, 0, 1, 1, 0, 2]]), 3),
                    _PREDICT_NAMES)
    return (
        by_hand,
        shuffled,
        _predict_case("2 tasks, 4 queries, 5 classes of 2 support images, a different shuffled "
                      "order per task", _shuffled(2, 5, 2, seed=41), n_way=5, n_query=4, seed=42),
        _predict_case("1 task, 3 queries, 4 classes of 3 support images in interleaved order "
                      "0, 1, 2, 3, 0, ...", [list(range(4)) * 3], n_way=4, n_query=3, seed=43),
        _predict_case("3 tasks, 2 queries, 5 classes of 1 support image (1-shot), shuffled",
                      _shuffled(3, 5, 1, seed=44), n_way=5, n_query=2, seed=45),
    )


# --------------------------------------------------------------------------------------------
# The exercise


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "one_hot is only applicable" in text:
        return "`F.one_hot` needs integer (int64) labels: use `support_y`, not a float copy of it."
    if "scalar type" in text or "same dtype" in text or "expected m1 and m2" in text:
        return ("`F.one_hot` returns int64; convert it to the attention's dtype, e.g. "
                "`F.one_hot(support_y, n_way).to(attention.dtype)`, before multiplying.")
    if "must match the size of tensor" in text:
        return ("two tensors of incompatible shapes were combined. To compare every query with "
                "every support image, use a matrix product, `q @ s.transpose(1, 2)` "
                "([tasks, n_query, D] @ [tasks, D, n_support]); `F.cosine_similarity(q, s)` "
                "compares only matching rows, unless you add the axes yourself "
                "(`q.unsqueeze(2)`, `s.unsqueeze(1)`).")
    if "Boolean value of Tensor" in text:
        return ("`if` (or `and`/`or`) got a tensor of several values: compare tensors "
                "element-wise and use the result as a mask instead.")
    return None


def attention_spec() -> FunctionSpec:
    """The spec of ``attention`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="attention",
        reference=reference_attention,
        cases=_attention_cases(),
        mistakes=ATTENTION_MISTAKES,
        returns="a tensor [tasks, n_query, n_support]",
        output_axes=("tasks", "n_query", "n_support"),
        error_hint=_error_hint,
    )


def predict_spec() -> FunctionSpec:
    """The spec of ``predict`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="predict",
        reference=reference_predict,
        cases=_predict_cases(),
        mistakes=PREDICT_MISTAKES,
        returns="a tensor [tasks, n_query, n_way]",
        output_axes=("tasks", "n_query", "n_way"),
        error_hint=_error_hint,
    )


def check_matching_attention(attention: Callable[[Tensor, Tensor], Tensor] | None = None,
                             predict: Callable[[Tensor, Tensor, int], Tensor] | None = None, *,
                             quiet: bool = False) -> CheckResult:
    """Check a student's ``attention`` and/or ``predict`` and display the verdict.

    ``attention(query_z, support_z)`` gets float64 ``[tasks, n_query, D]`` and ``[tasks,
    n_support, D]`` and must return ``[tasks, n_query, n_support]``; ``predict(attention,
    support_y, n_way)`` gets float64 ``[tasks, n_query, n_support]`` (rows that sum to 1) and
    int64 ``[tasks, n_support]`` labels in any order and must return ``[tasks, n_query,
    n_way]``. Each function given is checked on its own cases (so the notebook checks them one
    at a time: ``check_matching_attention(predict=predict)``).

    Args:
        attention: the student's attention, or None.
        predict: the student's prediction, or None.
        quiet: return the result without displaying it.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`, one verdict per function given.

    Raises:
        TypeError: when no function is given.
    """
    return check_given("check_matching_attention", "exercise 4.2, Matching Networks' attention", [
        ("attention", attention_spec, attention), ("predict", predict_spec, predict)],
        quiet=quiet)
