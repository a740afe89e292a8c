"""Exercise 2.1: class prototypes and squared Euclidean distances (Prototypical Networks).

The student writes ``prototypes(support_z, support_y, n_way)`` and
``squared_distances(query_z, centres)``; the references are
:func:`fslearn.methods.protonet.prototypes` and
:func:`fslearn.methods.protonet.squared_euclidean_distance`.

The prototype cases put the support labels in class-major order (as the package's sampler does),
in shuffled order (a different order in every task), in interleaved order, and with one shot; so
a solution that relies on the order of the labels fails. The distance cases have different
numbers of queries, classes and dimensions, so that a broadcasting mix-up shows in the shape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_functions
from fslearn.methods.protonet import prototypes as _reference_prototypes
from fslearn.methods.protonet import squared_euclidean_distance as _reference_distances

__all__ = ["check_prototypes", "distances_spec", "prototypes_spec"]

_SUPPORT_NAMES = ("support_z", "support_y", "n_way")
_DISTANCE_NAMES = ("query_z", "centres")


# --------------------------------------------------------------------------------------------
# prototypes


def _sums(support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    return F.one_hot(support_y, n_way).to(support_z.dtype).transpose(1, 2) @ support_z


def _class_major(support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    tasks, n_support, dim = support_z.shape
    return support_z.reshape(tasks, n_way, n_support // n_way, dim).mean(dim=2)


def _interleaved(support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    tasks, n_support, dim = support_z.shape
    return support_z.reshape(tasks, n_support // n_way, n_way, dim).mean(dim=1)


def _class_major_wrong_axis(support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    tasks, n_support, dim = support_z.shape
    return support_z.reshape(tasks, n_way, n_support // n_way, dim).mean(dim=1)


def _interleaved_wrong_axis(support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    tasks, n_support, dim = support_z.shape
    return support_z.reshape(tasks, n_support // n_way, n_way, dim).mean(dim=2)


def _first_task_labels(support_z: Tensor, support_y: Tensor, n_way: int) -> Tensor:
    return _reference_prototypes(support_z, support_y[:1].expand_as(support_y), n_way)


_SORTED_HINT = (
    "your prototypes are right only when the support set is in one fixed order ({order}). The "
    "package's sampler happens to put it in class-major order, but `prototypes` must not rely "
    "on it: the labels may come in any order (see test case 2). Pick each class's examples by "
    "their labels: `support_y[t] == n` is a mask of the examples of class n in task t; or, for "
    "all classes at once, use the one-hot matrix `F.one_hot(support_y, n_way)`.")

PROTOTYPE_MISTAKES = (
    Mistake("sorted_labels", _SORTED_HINT.format(order="all of class 0, then all of class 1, "
                                                      "..."), _class_major),
    Mistake("sorted_labels", _SORTED_HINT.format(order="classes 0, 1, ..., N-1, then again"),
            _interleaved),
    Mistake("sum_not_mean",
            "you summed the support embeddings of each class; a prototype is their mean: divide "
            "each class's sum by its number of examples (K).",
            _sums),
    Mistake("wrong_count",
            "you divided each class's sum by the number of all support examples (N*K); divide "
            "by the number of examples of that class (K).",
            lambda z, y, n: _sums(z, y, n) / z.shape[1]),
    Mistake("wrong_axis",
            "you averaged over the wrong axis: after reshaping the support set, your mean runs "
            "over the classes instead of over the examples of each class. (Reshaping also "
            "assumes an order of the labels, which `prototypes` must not do.)",
            _class_major_wrong_axis),
    Mistake("wrong_axis",
            "you averaged over the wrong axis: after reshaping the support set, your mean runs "
            "over the classes instead of over the examples of each class. (Reshaping also "
            "assumes an order of the labels, which `prototypes` must not do.)",
            _interleaved_wrong_axis),
    Mistake("ignored_labels",
            "you averaged all the support examples of a task together, one vector per task; "
            "each class needs its own mean, over the examples that have its label.",
            lambda z, y, n: z.mean(dim=1)),
    Mistake("ignored_labels",
            "every prototype of a task is the mean of all its support examples; each class "
            "needs its own mean, over the examples that have its label.",
            lambda z, y, n: z.mean(dim=1, keepdim=True).expand(-1, n, -1)),
    Mistake("mean_over_embedding",
            "you averaged over the embedding dimension D (the last axis); a prototype keeps all "
            "D coordinates: average over the support examples of each class instead.",
            lambda z, y, n: z.mean(dim=-1)),
    Mistake("same_labels_every_task",
            "you used the labels of the first task for every task; each task has its own "
            "labels, in its own order: use `support_y[t]` for task t.",
            _first_task_labels),
    Mistake("transposed_output",
            "the axes of the result are swapped: return [tasks, n_way, D], one row per class "
            "(transpose with `.transpose(1, 2)` where needed).",
            lambda z, y, n: _reference_prototypes(z, y, n).transpose(1, 2)),
)


def _support_case(description: str, labels: list[list[int]], n_way: int, dim: int,
                  seed: int) -> Case:
    support_y = torch.tensor(labels, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    support_z = torch.randn(*support_y.shape, dim, generator=generator).mul(4).round().div(4)
    return Case(description, (support_z, support_y, n_way), _SUPPORT_NAMES)


def _shuffled(tasks: int, n_way: int, k_shot: int, seed: int) -> list[list[int]]:
    generator = torch.Generator().manual_seed(seed)
    ordered = torch.arange(n_way).repeat_interleave(k_shot)
    return [ordered[torch.randperm(n_way * k_shot, generator=generator)].tolist()
            for _ in range(tasks)]


def _prototype_cases() -> tuple[Case, ...]:
    by_hand = Case("1 task, 2 classes of 2 examples in class-major order",
                   (torch.tensor([[[0.0, 0.0], [2.0, 0.0], [1.0, 3.0], [1.0, 5.0]]]),
                    torch.tensor([[0, 0, 1, 1]]), 2), _SUPPORT_NAMES)
    shuffled = Case("1 task, 3 classes of 2 examples, labels in shuffled order",
                    (torch.tensor([[[4.0, 1.0], [0.0, 2.0], [3.0, 3.0], [1.0, 5.0], [2.0, 0.0],
                                    [6.0, 3.0]]]),
                     torch.tensor([[2, 0, 1, 1, 0, 2]]), 3), _SUPPORT_NAMES)
    return (
        by_hand,
        shuffled,
        _support_case("2 tasks, 3 classes of 4 examples, a different shuffled order per task",
                      _shuffled(2, 3, 4, seed=1), n_way=3, dim=5, seed=11),
        _support_case("1 task, 4 classes of 3 examples in interleaved order 0, 1, 2, 3, 0, ...",
                      [list(range(4)) * 3], n_way=4, dim=6, seed=12),
        _support_case("3 tasks, 5 classes of 1 example (1-shot), shuffled",
                      _shuffled(3, 5, 1, seed=3), n_way=5, dim=8, seed=13),
    )


# --------------------------------------------------------------------------------------------
# squared_distances


def _differences(query_z: Tensor, centres: Tensor) -> Tensor:
    return query_z.unsqueeze(2) - centres.unsqueeze(1)  # [tasks, n_query, n_way, D]


def _cosine(query_z: Tensor, centres: Tensor) -> Tensor:
    return F.cosine_similarity(query_z.unsqueeze(2), centres.unsqueeze(1), dim=-1)


_COSINE_HINT = ("that is a cosine similarity or distance, which only sees the angle between two "
                "vectors; Prototypical Networks use the squared Euclidean distance "
                "||q - c||**2 = sum over the D coordinates of (q_d - c_d)**2.")
_DOT_HINT = ("that is an inner product q . c, not a distance. The squared distance is "
             "||q||**2 - 2 q . c + ||c||**2, or, directly, the sum of (q_d - c_d)**2.")
_SUMMED_HINT = ("you summed over the wrong axis: the differences `query_z.unsqueeze(2) - "
                "centres.unsqueeze(1)` have shape [tasks, n_query, n_way, D]; square them and "
                "sum over the last axis, D.")

DISTANCE_MISTAKES = (
    Mistake("not_squared",
            "these are Euclidean distances ||q - c||, the square roots of what is asked. "
            "Prototypical Networks use the squared distance: drop the square root (note that "
            "`torch.cdist` returns the plain distance).",
            lambda q, c: _reference_distances(q, c).sqrt()),
    Mistake("negative",
            "your values have the wrong sign. Distances are >= 0; the model's scores are minus "
            "the distances, but that sign belongs to the classifier, not to this function.",
            lambda q, c: -_reference_distances(q, c)),
    Mistake("transposed_output",
            "the axes of the result are swapped: it must be [tasks, n_query, n_way], one row "
            "per query. With broadcasting, `query_z.unsqueeze(2) - centres.unsqueeze(1)` puts "
            "the queries on axis 1 and the classes on axis 2.",
            lambda q, c: _reference_distances(q, c).transpose(1, 2)),
    Mistake("summed_wrong_axis", _SUMMED_HINT, lambda q, c: _differences(q, c).pow(2).sum(1)),
    Mistake("summed_wrong_axis", _SUMMED_HINT, lambda q, c: _differences(q, c).pow(2).sum(2)),
    Mistake("mean_not_sum",
            "you averaged the squared differences over the D coordinates; the squared distance "
            "is their sum.",
            lambda q, c: _differences(q, c).pow(2).mean(-1)),
    Mistake("missing_square",
            "you summed the raw differences q_d - c_d, which cancel each other out: square "
            "them before summing.",
            lambda q, c: _differences(q, c).sum(-1)),
    Mistake("manhattan",
            "you summed the absolute differences |q_d - c_d| (the Manhattan, or L1, distance); "
            "square the differences instead.",
            lambda q, c: _differences(q, c).abs().sum(-1)),
    Mistake("cosine", _COSINE_HINT, _cosine),
    Mistake("cosine", _COSINE_HINT, lambda q, c: 1 - _cosine(q, c)),
    Mistake("dot_product", _DOT_HINT, lambda q, c: q @ c.transpose(1, 2)),
    Mistake("dot_product", _DOT_HINT, lambda q, c: -(q @ c.transpose(1, 2))),
    Mistake("dropped_query_norm",
            "you expanded ||q - c||**2 = ||q||**2 - 2 q . c + ||c||**2 but left out ||q||**2. "
            "That does not change which prototype is closest, but these are not the "
            "distances: add it back.",
            lambda q, c: (c.pow(2).sum(-1).unsqueeze(1) - 2 * q @ c.transpose(1, 2))),
)


def _distance_case(description: str, tasks: int, n_query: int, n_way: int, dim: int,
                   seed: int) -> Case:
    generator = torch.Generator().manual_seed(seed)
    query_z = torch.randn(tasks, n_query, dim, generator=generator).mul(4).round().div(4)
    centres = torch.randn(tasks, n_way, dim, generator=generator).mul(4).round().div(4)
    return Case(description, (query_z, centres), _DISTANCE_NAMES)


def _distance_cases() -> tuple[Case, ...]:
    by_hand = Case("1 task, 3 queries, 2 centres in 2-D",
                   (torch.tensor([[[0.0, 0.0], [1.0, 1.0], [3.0, 4.0]]]),
                    torch.tensor([[[0.0, 0.0], [3.0, 0.0]]])), _DISTANCE_NAMES)
    return (
        by_hand,
        _distance_case("2 tasks, 5 queries, 3 centres in 4-D", 2, 5, 3, 4, seed=21),
        _distance_case("1 task, 7 queries, 5 centres in 16-D", 1, 7, 5, 16, seed=22),
        _distance_case("3 tasks, 4 queries, 6 centres in 3-D", 3, 4, 6, 3, seed=23),
    )


# --------------------------------------------------------------------------------------------
# The exercise


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "one_hot is only applicable" in text:
        return "`F.one_hot` needs integer (int64) labels: use `support_y`, not a float copy of it."
    if "expected scalar type Long" in text or "same dtype" in text:
        return ("`F.one_hot` returns int64; convert it to the embeddings' dtype, e.g. "
                "`F.one_hot(support_y, n_way).to(support_z.dtype)`, before multiplying.")
    if "Boolean value of Tensor" in text:
        return ("`if` (or `and`/`or`) got a tensor of several values: compare tensors "
                "element-wise and use the result as a mask instead.")
    if "is invalid for input of size" in text:
        return ("a reshape did not fit the tensor. Note that the examples of a class are not "
                "necessarily next to each other: select them by their labels.")
    return None


def prototypes_spec() -> FunctionSpec:
    """The spec of ``prototypes`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="prototypes",
        reference=_reference_prototypes,
        cases=_prototype_cases(),
        mistakes=PROTOTYPE_MISTAKES,
        returns="a tensor [tasks, n_way, D]",
        output_axes=("tasks", "n_way", "D"),
        error_hint=_error_hint,
        atol=1e-5,
    )


def distances_spec() -> FunctionSpec:
    """The spec of ``squared_distances`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="squared_distances",
        reference=_reference_distances,
        cases=_distance_cases(),
        mistakes=DISTANCE_MISTAKES,
        returns="a tensor [tasks, n_query, n_way]",
        output_axes=("tasks", "n_query", "n_way"),
        error_hint=_error_hint,
        atol=1e-4,
    )


def check_prototypes(prototypes: Callable[[Tensor, Tensor, int], Tensor],
                     squared_distances: Callable[[Tensor, Tensor], Tensor], *,
                     quiet: bool = False) -> CheckResult:
    """Check a student's ``prototypes`` and ``squared_distances`` and display the verdict.

    ``prototypes(support_z, support_y, n_way)`` gets float32 ``support_z`` ``[tasks, n_support,
    D]`` and int64 ``support_y`` ``[tasks, n_support]`` (each class ``K`` times, in any order)
    and must return ``[tasks, n_way, D]``; ``squared_distances(query_z, centres)`` gets float32
    ``[tasks, n_query, D]`` and ``[tasks, n_way, D]`` and must return ``[tasks, n_query,
    n_way]``. Each function is checked on its own cases (so one can pass while the other is
    still being written).

    Args:
        prototypes: the student's prototype function.
        squared_distances: the student's distance function.
        quiet: return the result without displaying it.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`, one verdict per function.
    """
    return check_functions("exercise 2.1, prototypes and distances",
                           [prototypes_spec(), distances_spec()],
                           [prototypes, squared_distances], quiet=quiet)
