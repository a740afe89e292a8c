r"""Exercise 5.2, R2-D2's ridge-regression head (Bertinetto et al., 2019): ``ridge_woodbury`` and
``ridge_logits``.

``ridge_woodbury(x, y, lam)`` gets ``x`` ``[tasks, n, p]``, ``y`` ``[tasks, n, N]`` and
:math:`\lambda > 0` and returns the ridge-regression weights ``[tasks, p, N]`` in the Woodbury
form :math:`x^\top (x x^\top + \lambda I_n)^{-1} y` (the primal form :math:`(x^\top x + \lambda
I_p)^{-1} x^\top y` gives the same weights and passes too); the reference is
:func:`fslearn.methods.r2d2.ridge_regression`. ``ridge_logits(support_z, support_y, query_z,
n_way, lam, scale, bias)`` is the whole head: one-hot targets, a column of ones for the bias,
ridge regression on the *mean* squared error (the system gets :math:`n\lambda`), and the
calibrated query outputs :math:`\alpha [f(x)\ 1] W + \beta`; the reference is
:func:`fslearn.methods.r2d2.ridge_head_logits`.

Every case of ``ridge_woodbury`` has no more examples than features (:math:`n \le p`), so that
:math:`x x^\top` is invertible and a forgotten regulariser gives values rather than an error;
``n``, ``p`` and ``N`` differ, so that a transpose or an identity of the wrong size shows.
The cases of ``ridge_logits`` have labels in shuffled order, different numbers of classes,
shots, dimensions and queries, and scales and biases other than 1 and 0. Recognised: no
regulariser, the regulariser outside the inverse, added to every entry or multiplying, the
``x^T`` in front left out, the output transposed; the regulariser not multiplied by ``n``, no
bias column, integer labels regressed instead of one-hot vectors, labels assumed in class-major
order, +-1 targets, the scale and bias missing, swapped or applied in the wrong order. An
identity of the wrong size, the wrong Gram matrix or ``.T`` on a batch raise errors whose hint
names them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_given
from fslearn.methods.r2d2 import ridge_head_logits as _reference_logits
from fslearn.methods.r2d2 import ridge_regression

__all__ = [
    "LOGIT_MISTAKES",
    "WOODBURY_MISTAKES",
    "check_ridge_head",
    "ridge_logits_spec",
    "ridge_woodbury_spec",
]

_WOODBURY_NAMES = ("x", "y", "lam")
_LOGIT_NAMES = ("support_z", "support_y", "query_z", "n_way", "lam", "scale", "bias")


def _reference_woodbury(x: Tensor, y: Tensor, lam: float) -> Tensor:
    return ridge_regression(x, y, lam, "woodbury")


# --------------------------------------------------------------------------------------------
# ridge_woodbury


def _gram(x: Tensor) -> Tensor:
    return x @ x.transpose(-2, -1)  # [tasks, n, n]


def _eye(x: Tensor) -> Tensor:
    return torch.eye(x.shape[-2], dtype=x.dtype)


WOODBURY_MISTAKES = (
    Mistake("no_regulariser",
            "these are the weights without the regulariser, x^T (x x^T)^-1 y: the least-squares "
            "solution that fits the support set exactly. Ridge regression adds lambda times the "
            "identity to the matrix you invert: (x x^T + lambda I_n).",
            lambda x, y, lam: x.transpose(-2, -1) @ torch.linalg.solve(_gram(x), y)),
    Mistake("regulariser_outside_inverse",
            "you added lambda I after inverting, (x x^T)^-1 + lambda I: the regulariser belongs "
            "inside the inverse, (x x^T + lambda I_n)^-1, where it keeps the matrix well "
            "conditioned.",
            lambda x, y, lam: x.transpose(-2, -1) @ (torch.linalg.inv(_gram(x))
                                                     + lam * _eye(x)) @ y),
    Mistake("regulariser_every_entry",
            "you added lambda to every entry of x x^T (`+ lam` on the matrix); the regulariser "
            "is lambda times the *identity*, added to the diagonal only: "
            "`x @ x.transpose(-2, -1) + lam * torch.eye(n)`.",
            lambda x, y, lam: x.transpose(-2, -1) @ torch.linalg.solve(_gram(x) + lam, y)),
    Mistake("regulariser_multiplies",
            "you multiplied x x^T by lambda; the regulariser is *added*, as lambda times the "
            "identity: x x^T + lambda I_n.",
            lambda x, y, lam: x.transpose(-2, -1) @ torch.linalg.solve(lam * _gram(x), y)),
    Mistake("missing_x_transpose",
            "you returned (x x^T + lambda I)^-1 y, one row per *example* [tasks, n, N]; the "
            "weights are x^T times that, one row per *feature*: [tasks, p, N].",
            lambda x, y, lam: torch.linalg.solve(_gram(x) + lam * _eye(x), y)),
    Mistake("transposed_output",
            "the axes of the result are swapped: the weights are [tasks, p, N], one row per "
            "feature and one column per output, so that `x @ W` gives the outputs.",
            lambda x, y, lam: _reference_woodbury(x, y, lam).transpose(-2, -1)),
)


def _woodbury_case(description: str, tasks: int, n: int, p: int, outputs: int, lam: float,
                   seed: int) -> Case:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(tasks, n, p, generator=generator, dtype=torch.float64).mul(4).round().div(4)
    y = torch.randn(tasks, n, outputs, generator=generator, dtype=torch.float64).mul(4).round() \
        .div(4)
    return Case(description, (x, y, lam), _WOODBURY_NAMES)


def _woodbury_cases() -> tuple[Case, ...]:
    # the notebook's example: x = [[1, 1], [-1, 1]], y = I, lambda = 1 -> x^T / 3
    by_hand = Case("1 task, 2 examples of 2 features, y = the identity, lambda 1",
                   (torch.tensor([[[1.0, 1.0], [-1.0, 1.0]]], dtype=torch.float64),
                    torch.eye(2, dtype=torch.float64)[None], 1.0), _WOODBURY_NAMES)
    return (
        by_hand,
        _woodbury_case("1 task, 3 examples of 5 features, 2 outputs, lambda 0.5", 1, 3, 5, 2,
                       0.5, seed=71),
        _woodbury_case("2 tasks, 4 examples of 7 features, 3 outputs, lambda 2", 2, 4, 7, 3,
                       2.0, seed=72),
        _woodbury_case("3 tasks, 2 examples of 6 features, 4 outputs, lambda 0.1", 3, 2, 6, 4,
                       0.1, seed=73),
    )


_SHAPES_HINT = (
    "`x` is [tasks, n, p] (n examples, p features) and `y` [tasks, n, N]. In the Woodbury form "
    "the matrix to invert is x x^T + lambda I_n: n x n, examples by examples "
    "(`x @ x.transpose(-2, -1)`, with `torch.eye(n)`, n = x.shape[-2]); x^T x + lambda I_p "
    "(p x p, `torch.eye(p)`) belongs to the primal form (x^T x + lambda I_p)^-1 x^T y. "
    "Transpose a batch of matrices with `.transpose(-2, -1)` (or `.mT`): `.T` reverses every "
    "axis of a 3-D tensor.")


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if ("shapes cannot be multiplied" in text or "must match the size of tensor" in text
            or "Expected size for first two dimensions" in text
            or "Incompatible shapes" in text or "size mismatch" in text):
        return _SHAPES_HINT
    if "singular" in text:
        return ("the matrix you invert is singular: with lambda I added to its diagonal "
                "(lambda > 0), x x^T + lambda I_n never is. Check that the regulariser is there "
                "and is added to the n x n matrix.")
    if "one_hot is only applicable" in text:
        return "`F.one_hot` needs integer (int64) labels: use `support_y`, not a float copy of it."
    if "expected scalar type" in text or "same dtype" in text or "dtype" in text:
        return ("two tensors of different dtypes met: `F.one_hot` returns int64 and the ones "
                "column must match the embeddings, e.g. `.to(support_z.dtype)` and "
                "`torch.ones(..., dtype=support_z.dtype)`.")
    return None


def ridge_woodbury_spec() -> FunctionSpec:
    """The spec of ``ridge_woodbury`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="ridge_woodbury",
        reference=_reference_woodbury,
        cases=_woodbury_cases(),
        mistakes=WOODBURY_MISTAKES,
        returns="a tensor [tasks, p, N]",
        output_axes=("tasks", "p", "N"),
        error_hint=_error_hint,
        rtol=1e-6,
        atol=1e-8,
    )


# --------------------------------------------------------------------------------------------
# ridge_logits


def _ones(z: Tensor) -> Tensor:
    return torch.cat([z, torch.ones(*z.shape[:-1], 1, dtype=z.dtype)], dim=-1)


def _head(support_z: Tensor, targets: Tensor, query_z: Tensor, lam: float,
          bias_column: bool = True) -> Tensor:
    """The regression outputs of the queries, before scale and bias."""
    x, q = (_ones(support_z), _ones(query_z)) if bias_column else (support_z, query_z)
    return q @ ridge_regression(x, targets, lam, "woodbury")


def _one_hot(support_y: Tensor, n_way: int, dtype: torch.dtype) -> Tensor:
    return F.one_hot(support_y, n_way).to(dtype)


def _class_major(support_y: Tensor, n_way: int) -> Tensor:
    tasks, n = support_y.shape
    return torch.arange(n_way).repeat_interleave(n // n_way).expand(tasks, -1)


def _variant(targets: Callable[[Tensor, int, Tensor], Tensor], *, lam_times_n: bool = True,
             bias_column: bool = True,
             calibrate: Callable[[Tensor, float, float], Tensor] = lambda o, s, b: s * o + b
             ) -> Callable[..., Tensor]:
    """A ridge head with one choice changed (the targets, the regulariser, the bias column or
    the calibration)."""

    def head(support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int, lam: float,
             scale: float, bias: float) -> Tensor:
        n = support_z.shape[-2]
        outputs = _head(support_z, targets(support_y, n_way, support_z), query_z,
                        lam * n if lam_times_n else lam, bias_column)
        return calibrate(outputs, scale, bias)

    return head


def _right_targets(y: Tensor, n_way: int, z: Tensor) -> Tensor:
    return _one_hot(y, n_way, z.dtype)


LOGIT_MISTAKES = (
    Mistake("regulariser_not_times_n",
            "you solved with lambda itself; R2-D2's lambda regularises the *mean* squared error "
            "over the n support examples, so the system gets n * lambda: "
            "x^T (x x^T + n lambda I_n)^-1 y (the authors divide x and y by sqrt(n), which "
            "comes to the same).",
            _variant(_right_targets, lam_times_n=False)),
    Mistake("no_bias_column",
            "there is no bias in your regression: append a column of ones to the support "
            "embeddings before solving, x = [f(x_i) 1] ([n, D+1]), and to the query "
            "embeddings before applying the weights.",
            _variant(_right_targets, bias_column=False)),
    Mistake("labels_not_one_hot",
            "you regressed the integer labels 0, 1, ..., N-1 (one output); the targets are "
            "one-hot vectors, `F.one_hot(support_y, n_way)` ([n, N]), one regression output "
            "per class, whose arg-max is the prediction.",
            _variant(lambda y, n, z: y.to(z.dtype).unsqueeze(-1))),
    Mistake("sorted_labels",
            "your targets assume the support set is in class-major order (all of class 0, then "
            "class 1, ...); the labels may come in any order (test case 2): one-hot encode "
            "`support_y` itself, `F.one_hot(support_y, n_way)`.",
            _variant(lambda y, n, z: _one_hot(_class_major(y, n), n, z.dtype))),
    Mistake("plus_minus_one_targets",
            "your targets are +-1 (2 * one-hot - 1); R2-D2 regresses the one-hot vectors "
            "themselves, 1 for the class and 0 elsewhere.",
            _variant(lambda y, n, z: 2 * _one_hot(y, n, z.dtype) - 1)),
    Mistake("no_scale_bias",
            "these are the raw regression outputs: calibrate them with the learned scale and "
            "bias, `scale * outputs + bias` (the authors' adjust layer).",
            _variant(_right_targets, calibrate=lambda o, s, b: o)),
    Mistake("scale_bias_swapped",
            "the scale and the bias are swapped: `scale * outputs + bias`.",
            _variant(_right_targets, calibrate=lambda o, s, b: b * o + s)),
    Mistake("bias_before_scale",
            "the bias is added before the scaling, scale * (outputs + bias); it comes after: "
            "`scale * outputs + bias`.",
            _variant(_right_targets, calibrate=lambda o, s, b: s * (o + b))),
    Mistake("transposed_output",
            "the axes of the result are swapped: it must be [tasks, q, N], one row per query.",
            lambda *args: _reference_logits(*args).transpose(-2, -1)),
)


def _logit_case(description: str, labels: list[list[int]], n_way: int, dim: int, queries: int,
                lam: float, scale: float, bias: float, seed: int) -> Case:
    generator = torch.Generator().manual_seed(seed)
    support_y = torch.tensor(labels, dtype=torch.int64)
    tasks, n = support_y.shape
    support_z = torch.randn(tasks, n, dim, generator=generator, dtype=torch.float64).mul(4) \
        .round().div(4)
    query_z = torch.randn(tasks, queries, dim, generator=generator, dtype=torch.float64).mul(4) \
        .round().div(4)
    return Case(description, (support_z, support_y, query_z, n_way, lam, scale, bias),
                _LOGIT_NAMES)


def _logit_cases() -> tuple[Case, ...]:
    # the notebook's example: 1-D embeddings 1 and -1 of two classes, the query 2
    by_hand = Case("1 task, 2 classes of 1 example in 1-D, 1 query, lambda 0.5, scale 3, "
                   "bias 0.5",
                   (torch.tensor([[[1.0], [-1.0]]], dtype=torch.float64), torch.tensor([[0, 1]]),
                    torch.tensor([[[2.0]]], dtype=torch.float64), 2, 0.5, 3.0, 0.5),
                   _LOGIT_NAMES)
    return (
        by_hand,
        _logit_case("1 task, 3 classes of 2 examples in shuffled order, 4-D, 4 queries, "
                    "lambda 0.5, scale 2, bias 0.25", [[2, 0, 1, 1, 0, 2]], 3, 4, 4, 0.5, 2.0,
                    0.25, seed=81),
        _logit_case("2 tasks, 4 classes of 1 example, 6-D, 3 queries, lambda 0.2, scale 5, "
                    "bias -1", [[3, 1, 0, 2], [0, 2, 3, 1]], 4, 6, 3, 0.2, 5.0, -1.0, seed=82),
        _logit_case("1 task, 2 classes of 4 examples (more examples than features), 3-D, 5 "
                    "queries, lambda 1, scale 1.5, bias 0.5", [[1, 0, 0, 1, 1, 0, 1, 0]], 2, 3,
                    5, 1.0, 1.5, 0.5, seed=83),
    )


def ridge_logits_spec() -> FunctionSpec:
    """The spec of ``ridge_logits`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="ridge_logits",
        reference=_reference_logits,
        cases=_logit_cases(),
        mistakes=LOGIT_MISTAKES,
        returns="a tensor [tasks, q, N]",
        output_axes=("tasks", "q", "N"),
        error_hint=_error_hint,
        rtol=1e-6,
        atol=1e-8,
    )


# --------------------------------------------------------------------------------------------
# The exercise


def check_ridge_head(ridge_woodbury: Callable[..., Tensor] | None = None,
                     ridge_logits: Callable[..., Tensor] | None = None, *,
                     quiet: bool = False) -> CheckResult:
    r"""Check a student's ``ridge_woodbury`` and ``ridge_logits`` (either or both) and display
    the verdict.

    * ``ridge_woodbury(x, y, lam)`` gets float64 ``x`` ``[tasks, n, p]`` and ``y``
      ``[tasks, n, N]`` and a float :math:`\lambda`; it returns ``[tasks, p, N]``,
      :math:`x^\top (x x^\top + \lambda I_n)^{-1} y`.
    * ``ridge_logits(support_z, support_y, query_z, n_way, lam, scale, bias)`` gets float64
      ``support_z`` ``[tasks, n, D]``, int64 ``support_y`` ``[tasks, n]`` (in any order),
      ``query_z`` ``[tasks, q, D]`` and floats; it returns ``[tasks, q, n_way]``, R2-D2's
      calibrated outputs (see the module docstring).

    Each function is checked on its own cases.

    Raises:
        TypeError: no function given.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`, one verdict per function given.
    """
    return check_given("check_ridge_head", "exercise 5.2, R2-D2's ridge-regression head",
                       [("ridge_woodbury", ridge_woodbury_spec, ridge_woodbury),
                        ("ridge_logits", ridge_logits_spec, ridge_logits)], quiet=quiet)
