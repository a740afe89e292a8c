r"""Exercise 7.1, the soft k-means refinement of semi-supervised prototypes (Ren et al., 2018):
``soft_kmeans_step``.

``soft_kmeans_step(support_z, support_y, unlabelled_z, n_way)`` gets the embedded support set
``[tasks, n_support, D]`` with its labels ``[tasks, n_support]`` and the embedded unlabelled
images ``[tasks, n_unlabelled, D]``, and returns the refined prototypes ``[tasks, n_way, D]``:
the prototypes of the labelled images, each unlabelled image's soft assignment (a softmax over
the classes of minus its squared distances to them) and one weighted update,

.. math:: \tilde p_c = \frac{\sum_i h_i z_{ic} + \sum_j \tilde h_j \tilde z_{jc}}
                            {\sum_i z_{ic} + \sum_j \tilde z_{jc}}.

The reference is :meth:`fslearn.methods.SemiSupervisedPrototypes.refined_prototypes` with the
``"soft"`` refinement (one step).

The cases have several shots per class (so the labelled images' count matters), shuffled
labels, unequal numbers of unlabelled images and classes, and unlabelled images at various
distances (so a softmax over the wrong axis, unsquared distances or hard assignments show).
Recognised: the softmax over the unlabelled images instead of the classes; plus instead of
minus the distances; Euclidean instead of squared distances; hard assignments; the labelled
images left out of the update (only the unlabelled ones) or out of its denominator; the old
prototype counted as one example instead of its K; dividing by the number of images instead of
the sum of the weights; and the prototypes returned unrefined.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_functions
from fslearn.methods.protonet import prototypes, squared_euclidean_distance
from fslearn.methods.semi_supervised import refine_prototypes, soft_assignments

__all__ = ["SOFT_KMEANS_MISTAKES", "check_soft_kmeans", "soft_kmeans_spec"]

_NAMES = ("support_z", "support_y", "unlabelled_z", "n_way")


def _reference(support_z: Tensor, support_y: Tensor, unlabelled_z: Tensor, n_way: int
               ) -> Tensor:
    centres = prototypes(support_z, support_y, n_way)
    weights = soft_assignments(centres, unlabelled_z)
    return refine_prototypes(support_z, support_y, unlabelled_z, weights, n_way)


def _with_weights(weigh: Callable[[Tensor], Tensor]) -> Callable[..., Tensor]:
    """The right update with the weights computed from the distances by ``weigh``."""
    def variant(support_z: Tensor, support_y: Tensor, unlabelled_z: Tensor, n_way: int
                ) -> Tensor:
        centres = prototypes(support_z, support_y, n_way)
        weights = weigh(squared_euclidean_distance(unlabelled_z, centres))
        return refine_prototypes(support_z, support_y, unlabelled_z, weights, n_way)
    return variant


def _parts(support_z: Tensor, support_y: Tensor, unlabelled_z: Tensor, n_way: int
           ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Labelled sums, labelled counts, weighted unlabelled sums, weight sums, prototypes."""
    one_hot = F.one_hot(support_y, n_way).to(support_z.dtype)
    centres = prototypes(support_z, support_y, n_way)
    weights = soft_assignments(centres, unlabelled_z)
    return (one_hot.transpose(1, 2) @ support_z, one_hot.sum(1).unsqueeze(-1),
            weights.transpose(1, 2) @ unlabelled_z, weights.sum(1).unsqueeze(-1), centres)


def _unlabelled_only(z: Tensor, y: Tensor, u: Tensor, n: int) -> Tensor:
    _, _, unlabelled, weight, _ = _parts(z, y, u, n)
    return unlabelled / weight


def _no_labelled_count(z: Tensor, y: Tensor, u: Tensor, n: int) -> Tensor:
    labelled, _, unlabelled, weight, _ = _parts(z, y, u, n)
    return (labelled + unlabelled) / weight


def _prototype_once(z: Tensor, y: Tensor, u: Tensor, n: int) -> Tensor:
    _, _, unlabelled, weight, centres = _parts(z, y, u, n)
    return (centres + unlabelled) / (1 + weight)


def _all_images_count(z: Tensor, y: Tensor, u: Tensor, n: int) -> Tensor:
    labelled, count, unlabelled, _, _ = _parts(z, y, u, n)
    return (labelled + unlabelled) / (count + u.shape[1])


_ASSIGNMENT = ("each unlabelled image's weights for the classes are a softmax over the classes "
               "of minus its squared distances, `(-d).softmax(dim=-1)` with `d` "
               "[tasks, n_unlabelled, n_way]")

SOFT_KMEANS_MISTAKES = (
    Mistake("softmax_wrong_axis",
            "your softmax runs over the unlabelled images, so each class shares one unit of "
            f"weight among them; {_ASSIGNMENT}: each image's weights sum to 1.",
            _with_weights(lambda d: (-d).softmax(dim=1))),
    Mistake("positive_distances",
            f"the sign is wrong: a close class must get a large weight; {_ASSIGNMENT}.",
            _with_weights(lambda d: d.softmax(dim=-1))),
    Mistake("not_squared",
            "these assignments use Euclidean distances ||h - p_c||; soft k-means (as the "
            "prototypical classifier) uses the squared distances: drop the square root.",
            _with_weights(lambda d: (-d.sqrt()).softmax(dim=-1))),
    Mistake("hard_assignment",
            "each unlabelled image went wholly to its nearest class (k-means); soft k-means "
            f"splits it between the classes: {_ASSIGNMENT}.",
            _with_weights(lambda d: F.one_hot(d.argmin(-1), d.shape[-1]).to(d.dtype))),
    Mistake("no_labelled_images",
            "your prototypes are the weighted means of the unlabelled images alone: the old "
            "prototypes (the labelled images, weight 1 each) are not included. Add the "
            "labelled images' sum to the numerator and their count to the denominator.",
            _unlabelled_only),
    Mistake("labelled_weight_forgotten",
            "the labelled images are in the numerator but not in the denominator: each counts "
            "with weight 1, so divide by the class's number of labelled images plus the sum of "
            "its unlabelled weights.",
            _no_labelled_count),
    Mistake("prototype_counted_once",
            "you added the old prototype as one example of weight 1; it stands for the K "
            "labelled images of its class, which each weigh 1: use their sum (K times the "
            "prototype) and count K in the denominator.",
            _prototype_once),
    Mistake("wrong_count",
            "you divided by the number of labelled plus unlabelled images; the unlabelled "
            "images count by their weight for the class: divide by K plus the sum over the "
            "unlabelled images of their weight for this class.",
            _all_images_count),
    Mistake("not_refined",
            "these are the prototypes of the labelled images, before any refinement: add the "
            "weighted unlabelled images.",
            lambda z, y, u, n: prototypes(z, y, n)),
)


def _case(description: str, labels: list[list[int]], n_unlabelled: int, n_way: int, dim: int,
          seed: int) -> Case:
    generator = torch.Generator().manual_seed(seed)
    support_y = torch.tensor(labels)
    # classes far apart (scale 2) and unlabelled images among them, so that the soft
    # assignments are neither uniform nor one-hot
    support_z = (2 * torch.randn(*support_y.shape, dim, generator=generator,
                                 dtype=torch.float64)).mul(4).round().div(4)
    unlabelled_z = (1.5 * torch.randn(support_y.shape[0], n_unlabelled, dim, generator=generator,
                                      dtype=torch.float64)).mul(4).round().div(4)
    return Case(description, (support_z, support_y, unlabelled_z, n_way), _NAMES)


def _cases() -> tuple[Case, ...]:
    by_hand = Case("1 task, 2 classes of 2 shots in 2-D, 3 unlabelled images",
                   (torch.tensor([[[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 1.0]]],
                                 dtype=torch.float64),
                    torch.tensor([[0, 0, 1, 1]]),
                    torch.tensor([[[1.5, 0.5], [0.0, 2.0], [2.0, 0.0]]], dtype=torch.float64), 2),
                   _NAMES)
    return (
        by_hand,
        _case("1 task, 3 classes of 3 shots in shuffled order, 5 unlabelled, 4-D",
              [[2, 0, 1, 1, 0, 2, 0, 2, 1]], 5, 3, 4, seed=71),
        _case("2 tasks, 4 classes of 2 shots, 7 unlabelled, 3-D",
              [[0, 1, 2, 3, 3, 2, 1, 0], [3, 3, 0, 1, 2, 0, 1, 2]], 7, 4, 3, seed=72),
        _case("1 task, 5 classes of 1 shot, 10 unlabelled, 6-D", [[4, 2, 0, 1, 3]], 10, 5, 6,
              seed=73),
    )


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "one_hot is only applicable" in text:
        return "`F.one_hot` needs integer (int64) labels: use `support_y`, not a float copy."
    if "expected scalar type" in text or "same dtype" in text:
        return ("`F.one_hot` returns int64; convert it to the embeddings' dtype, "
                "`F.one_hot(support_y, n_way).to(support_z.dtype)`, before multiplying.")
    if "shapes cannot be multiplied" in text or "must match the size of tensor" in text:
        return ("a product of tensors did not fit: the weights are [tasks, n_unlabelled, "
                "n_way] and the unlabelled embeddings [tasks, n_unlabelled, D]; their weighted "
                "sums are `weights.transpose(1, 2) @ unlabelled_z`, [tasks, n_way, D].")
    return None


def soft_kmeans_spec() -> FunctionSpec:
    """The spec of ``soft_kmeans_step`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="soft_kmeans_step",
        reference=_reference,
        cases=_cases(),
        mistakes=SOFT_KMEANS_MISTAKES,
        returns="a tensor [tasks, n_way, D]",
        output_axes=("tasks", "n_way", "D"),
        error_hint=_error_hint,
    )


def check_soft_kmeans(soft_kmeans_step: Callable[[Tensor, Tensor, Tensor, int], Tensor], *,
                      quiet: bool = False) -> CheckResult:
    """Check a student's ``soft_kmeans_step`` and display the verdict.

    ``soft_kmeans_step(support_z, support_y, unlabelled_z, n_way)`` gets float64 ``support_z``
    ``[tasks, n_support, D]``, int64 ``support_y`` ``[tasks, n_support]`` (each class K times, in
    any order) and ``unlabelled_z`` ``[tasks, n_unlabelled, D]``, and must return the refined
    prototypes ``[tasks, n_way, D]``.

    Args:
        soft_kmeans_step: the student's function.
        quiet: return the result without displaying it.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`.
    """
    return check_functions("exercise 7.1, the soft k-means refinement", [soft_kmeans_spec()],
                           [soft_kmeans_step], quiet=quiet)
