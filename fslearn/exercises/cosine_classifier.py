r"""Exercise 3.1, the cosine classifier of Baseline++ (Chen et al., 2019): ``cosine_logits``.

``cosine_logits(z, weight, scale)`` gets embeddings ``z`` ``[..., n, D]``, one weight vector per
class ``weight`` ``[..., C, D]`` (leading axes broadcast with ``z``'s) and the scale
:math:`\gamma`, and returns ``[..., n, C]``, :math:`s_c(x) = \gamma \cos(w_c, f(x))`. The
reference is :func:`fslearn.methods.baseline.cosine_logits`.

The cases have embeddings and weight vectors of clearly different lengths, numbers of examples,
classes and dimensions that all differ (so that a normalisation over the wrong axis shows in the
values), scales other than 1, and one batched case with a tasks axis (how the package's
fine-tuning calls it). Recognised: the embeddings, the weights or both left unnormalised; the
weights normalised per feature (over the classes) instead of per class, or the embeddings over
the examples; the scale forgotten, applied twice or divided by; a distance instead of a
similarity (the cosine distance, or the Euclidean distance of raw or normalised vectors); and
the output transposed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_functions
from fslearn.methods.baseline import cosine_logits as _reference_cosine_logits

__all__ = ["COSINE_MISTAKES", "check_cosine_classifier", "cosine_logits_spec"]

_NAMES = ("z", "weight", "scale")


def _dot(z: Tensor, weight: Tensor, z_dim: int | None, weight_dim: int | None) -> Tensor:
    """``z w^T`` after normalising each side over an axis (None: not normalised)."""
    if z_dim is not None:
        z = F.normalize(z, dim=z_dim)
    if weight_dim is not None:
        weight = F.normalize(weight, dim=weight_dim)
    return z @ weight.transpose(-1, -2)


def _squared_distances(z: Tensor, weight: Tensor) -> Tensor:
    return (z.unsqueeze(-2) - weight.unsqueeze(-3)).pow(2).sum(-1)  # [..., n, C]


_ONE_SIDE_HINT = (
    "the cosine divides the dot product by the lengths of *both* vectors, "
    "cos(w_c, z) = w_c.z / (||w_c|| ||z||): {which} Normalise each row over its last axis, "
    "`F.normalize(z, dim=-1)` and `F.normalize(weight, dim=-1)`.")
_WEIGHT_AXIS_HINT = (
    "you normalised the weights over the wrong axis: `weight` is [C, D], one row per *class*, "
    "and each class's vector w_c must have length 1, `F.normalize(weight, dim=-1)`. Over the "
    "classes (axis -2) you normalised each feature instead; that is what `nn.Linear`'s weight "
    "layout invites if you transpose first.")
_Z_AXIS_HINT = (
    "you normalised the embeddings over the wrong axis: each embedding, a row of D numbers, must "
    "have length 1, `F.normalize(z, dim=-1)`; over axis -2 you normalised each feature across "
    "the examples.")
_EUCLIDEAN_HINT = (
    "that is (minus) a Euclidean distance, a Prototypical Network's score; Baseline++ scores a "
    "class by the cosine similarity gamma * cos(w_c, z) = gamma * w_c.z / (||w_c|| ||z||).")

COSINE_MISTAKES = (
    Mistake("z_not_normalised",
            _ONE_SIDE_HINT.format(which="you normalised the weights but not the embeddings, so "
                                        "a long embedding gets large logits."),
            lambda z, w, s: s * _dot(z, w, None, -1)),
    Mistake("weight_not_normalised",
            _ONE_SIDE_HINT.format(which="you normalised the embeddings but not the weights, so "
                                        "a class with a long weight vector wins more often."),
            lambda z, w, s: s * _dot(z, w, -1, None)),
    Mistake("not_normalised",
            "that is a linear classifier without bias, gamma * w_c.z (Baseline's head, times the "
            "scale). Baseline++ takes the cosine: normalise each embedding and each weight vector "
            "to length 1 first, `F.normalize(z, dim=-1)` and `F.normalize(weight, dim=-1)`.",
            lambda z, w, s: s * _dot(z, w, None, None)),
    Mistake("weight_normalised_per_feature", _WEIGHT_AXIS_HINT,
            lambda z, w, s: s * _dot(z, w, -1, -2)),
    Mistake("weight_normalised_per_feature+z_not_normalised",
            "your answer differs from the formula in several ways:\n"
            f"  - {_WEIGHT_AXIS_HINT}\n"
            "  - the embeddings are not normalised: divide each by its length too, "
            "`F.normalize(z, dim=-1)`.",
            lambda z, w, s: s * _dot(z, w, None, -2)),
    Mistake("z_normalised_wrong_axis", _Z_AXIS_HINT, lambda z, w, s: s * _dot(z, w, -2, -1)),
    Mistake("z_normalised_wrong_axis+weight_normalised_per_feature",
            "you normalised both over the wrong axis, over the examples and over the classes. "
            "Each *row*, an embedding or a class's weight vector, must have length 1: "
            "`F.normalize(z, dim=-1)`, `F.normalize(weight, dim=-1)`.",
            lambda z, w, s: s * _dot(z, w, -2, -2)),
    Mistake("no_scale",
            "the scale is missing: the logits are gamma * cos(w_c, z). A cosine lies in [-1, 1], "
            "so without gamma the softmax over the classes stays nearly uniform and the "
            "cross-entropy cannot get small.",
            lambda z, w, s: _reference_cosine_logits(z, w, 1.0)),
    Mistake("scale_twice",
            "the scale is applied twice (gamma**2 * cos): multiply the cosines by gamma once.",
            lambda z, w, s: _reference_cosine_logits(z, w, s * s)),
    Mistake("divided_by_scale",
            "you divided by the scale; the logits are gamma * cos(w_c, z), the cosines "
            "*multiplied* by gamma (gamma plays the role of an inverse temperature).",
            lambda z, w, s: _reference_cosine_logits(z, w, 1 / s)),
    Mistake("cosine_distance",
            "that is a distance, gamma * (1 - cos), which is small for the most similar class; "
            "the logits are similarities, large for the best class: gamma * cos(w_c, z).",
            lambda z, w, s: s * (1 - _dot(z, w, -1, -1))),
    Mistake("negated",
            "the sign is wrong: the logit of the most similar class must be the largest, "
            "+gamma * cos(w_c, z).",
            lambda z, w, s: -_reference_cosine_logits(z, w, s)),
    Mistake("euclidean", _EUCLIDEAN_HINT, lambda z, w, s: -s * _squared_distances(z, w)),
    Mistake("euclidean", _EUCLIDEAN_HINT, lambda z, w, s: -s * _squared_distances(z, w).sqrt()),
    Mistake("euclidean", _EUCLIDEAN_HINT, lambda z, w, s: -_squared_distances(z, w)),
    Mistake("euclidean_of_unit_vectors",
            "you took minus the squared Euclidean distance between the normalised vectors, "
            "-||w_c/||w_c|| - z/||z||||**2 = 2 cos(w_c, z) - 2. It ranks the classes like the "
            "cosine, but it is not gamma * cos: compute the cosine itself, the dot product of "
            "the normalised vectors.",
            lambda z, w, s: -s * _squared_distances(F.normalize(z, dim=-1),
                                                    F.normalize(w, dim=-1))),
    Mistake("transposed_output",
            "the axes of the result are swapped: it must be [n, C] (with any leading axes in "
            "front), one row per embedding, `z @ weight.transpose(-1, -2)`.",
            lambda z, w, s: _reference_cosine_logits(z, w, s).transpose(-1, -2)),
)


def _vectors(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """Rounded random vectors of clearly different lengths (a factor 0.5 to 3 per vector)."""
    directions = torch.randn(*shape, generator=generator, dtype=torch.float64)
    lengths = 0.5 + 2.5 * torch.rand(*shape[:-1], 1, generator=generator, dtype=torch.float64)
    return (directions * lengths).mul(4).round().div(4)


def _case(description: str, z_shape: tuple[int, ...], weight_shape: tuple[int, ...],
          scale: float, seed: int) -> Case:
    generator = torch.Generator().manual_seed(seed)
    return Case(description, (_vectors(z_shape, generator), _vectors(weight_shape, generator),
                              scale), _NAMES)


def _cases() -> tuple[Case, ...]:
    by_hand = Case("3 embeddings, 2 classes in 2-D, scale 2",
                   (torch.tensor([[3.0, 4.0], [0.0, 2.0], [-1.0, 0.0]], dtype=torch.float64),
                    torch.tensor([[2.0, 0.0], [1.0, 1.0]], dtype=torch.float64), 2.0), _NAMES)
    return (
        by_hand,
        _case("5 embeddings, 3 classes in 4-D, scale 10", (5, 4), (3, 4), 10.0, seed=51),
        _case("4 embeddings, 6 classes in 8-D, scale 2", (4, 8), (6, 8), 2.0, seed=52),
        _case("2 tasks of 3 embeddings, 4 classes in 5-D, scale 2.5 (a tasks axis in front, "
              "as in the package's fine-tuning)", (2, 3, 5), (2, 4, 5), 2.5, seed=53),
    )


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "shapes cannot be multiplied" in text or "must match the size of tensor" in text:
        return ("`z` is [..., n, D] and `weight` [..., C, D]: their product needs the weight's "
                "last two axes swapped, `z @ weight.transpose(-1, -2)` ([..., n, D] @ [..., D, "
                "C]). `.T` reverses *every* axis of a 3-D tensor, so it breaks the batched "
                "case.")
    if "Boolean value of Tensor" in text:
        return ("`if` (or `and`/`or`) got a tensor of several values: work on whole tensors "
                "instead.")
    return None


def cosine_logits_spec() -> FunctionSpec:
    """The spec of ``cosine_logits`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="cosine_logits",
        reference=_reference_cosine_logits,
        cases=_cases(),
        mistakes=COSINE_MISTAKES,
        returns="a tensor [..., n, C]",
        error_hint=_error_hint,
    )


def check_cosine_classifier(cosine_logits: Callable[[Tensor, Tensor, float], Tensor], *,
                            quiet: bool = False) -> CheckResult:
    """Check a student's ``cosine_logits`` and display the verdict.

    ``cosine_logits(z, weight, scale)`` gets float64 ``z`` ``[n, D]`` and ``weight`` ``[C, D]``
    (one case has a tasks axis in front of both, ``[tasks, n, D]`` and ``[tasks, C, D]``) and a
    float scale, and must return ``[n, C]`` (``[tasks, n, C]``).

    Args:
        cosine_logits: the student's function.
        quiet: return the result without displaying it.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`.
    """
    return check_functions("exercise 3.1, Baseline++'s cosine classifier", [cosine_logits_spec()],
                           [cosine_logits], quiet=quiet)
