r"""Exercise 5.1, MAML's inner step: ``inner_step``, ``first_order_meta_gradient`` and
``reptile_update``.

The tasks are tiny (a 2-class linear model or a 2-3-2 MLP on a handful of 2-D points, float64),
so a check takes milliseconds. :class:`TaskLoss` is a task's loss as a function of the parameters
(a dict by name), with a readable ``repr`` for the messages.

* ``inner_step(params, loss_fn, alpha, first_order)`` is compared with the package's
  :func:`~fslearn.methods.maml.inner_loop` (one step) on two things: the adapted parameters
  :math:`\theta' = \theta - \alpha \nabla_\theta \mathcal{L}_S(\theta)` and the meta-gradient
  :math:`\nabla_\theta \mathcal{L}_Q(\theta')` that autograd computes *through* the step (the
  :class:`~fslearn.exercises.checker.FunctionSpec`'s ``call``). The second catches what the
  first cannot: a step taken with ``create_graph=False`` or a detached gradient has the right
  values but drops the Hessian term of second-order MAML.
* ``first_order_meta_gradient(params, adapted, query_loss)`` is given :math:`\theta'` built
  with the second-order graph, so the gradient at :math:`\theta`, the second-order one and the
  first-order one all differ.
* ``reptile_update(theta, phis, epsilon)`` is compared with one step of plain SGD with learning
  rate :math:`\epsilon` on the gradient :math:`\theta - \bar\phi`, which is how
  :class:`~fslearn.methods.reptile.Reptile` updates.

A compared output of ``inner_step`` has two rows: the adapted parameters, flattened in the order
of ``params``, and the meta-gradient, flattened the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_functions
from fslearn.methods.maml import inner_loop

__all__ = [
    "TaskLoss",
    "check_maml_inner_step",
    "first_order_meta_gradient_spec",
    "inner_step_spec",
    "reptile_update_spec",
]

Params = dict[str, Tensor]


class TaskLoss:
    """A task's loss as a function of the parameters: ``loss_fn(params)`` is the scalar loss of
    ``model`` called with ``params`` (a dict by name) on the points ``x`` with targets ``y``."""

    def __init__(self, description: str, model: nn.Module, x: Tensor, y: Tensor,
                 loss_function: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy) -> None:
        self.description, self.model, self.x, self.y = description, model, x, y
        self.loss_function = loss_function

    def __call__(self, params: Params) -> Tensor:
        if not isinstance(params, dict):
            raise TypeError(f"the loss takes the parameters as a dict {{name: tensor}}, like "
                            f"`params`; got {_kind(params)}")
        return self.loss_function(functional_call(self.model, params, (self.x,)), self.y)

    def __repr__(self) -> str:
        return f"<{self.description}>"


def _kind(value: Any) -> str:
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} `{name}`"


# --------------------------------------------------------------------------------------------
# The tiny tasks


def _linear() -> nn.Module:
    return nn.Linear(2, 2).double()


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 2)).double()


def _params(model: nn.Module, seed: int) -> Params:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(value.shape, generator=generator, dtype=torch.float64).mul(4)
            .round().div(8) for name, value in model.named_parameters()}


def _points(n: int, seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=generator, dtype=torch.float64).mul(4).round().div(4)
    y = torch.arange(n) % 2
    return x, y


def _task(model_name: str, n_support: int, n_query: int, seed: int) -> tuple[Params, TaskLoss,
                                                                             TaskLoss]:
    model = _linear() if model_name == "linear" else _mlp()
    what = ("a 2-class linear model" if model_name == "linear"
            else "a 2-3-2 tanh MLP")
    support, query = _points(n_support, seed), _points(n_query, seed + 100)
    return (_params(model, seed),
            TaskLoss(f"support loss: cross-entropy of {what} on {n_support} points", model,
                     *support),
            TaskLoss(f"query loss: cross-entropy of {what} on {n_query} points", model,
                     *query))


def _package_step(params: Params, loss_fn: TaskLoss, alpha: float, first_order: bool) -> Params:
    """One step of the package's inner loop."""
    return inner_loop(loss_fn.model, params, loss_fn.x, loss_fn.y, 1,
                      dict.fromkeys(params, alpha), first_order, loss_fn.loss_function)


def _flat(values: Any, params: Params, what: str) -> Tensor:
    """``values`` (a dict with the keys of ``params``) flattened in the order of ``params``."""
    if not isinstance(values, dict):
        raise TypeError(f"{what} must be a dict {{name: tensor}} with the keys of `params`; "
                        f"it is {_kind(values)}")
    missing = [name for name in params if name not in values]
    if missing:
        raise KeyError(f"{what} has no entry {missing[0]!r}: use the keys of `params`")
    parts = []
    for name, like in params.items():
        value = values[name]
        if value is None:  # an unused parameter (allow_unused=True): its gradient is 0
            value = torch.zeros_like(like)
        if not isinstance(value, Tensor) or value.shape != like.shape:
            shape = list(value.shape) if isinstance(value, Tensor) else _kind(value)
            raise ValueError(f"{what}[{name!r}] must have the shape of the parameter, "
                             f"{list(like.shape)}; it is {shape}")
        parts.append(value.detach().reshape(-1).to(torch.float64))
    return torch.cat(parts)


def _leaves(params: Params) -> Params:
    # the checker hands over fresh copies: making them the leaves keeps the in-place check
    return {name: value.requires_grad_() for name, value in params.items()}


def _meta_gradient(loss: Tensor, leaves: Params) -> Tensor:
    if not loss.requires_grad:  # everything was detached: nothing flows back
        return torch.zeros(sum(value.numel() for value in leaves.values()), dtype=torch.float64)
    gradients = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return _flat(dict(zip(leaves, gradients, strict=True)), leaves, "the meta-gradient")


# --------------------------------------------------------------------------------------------
# inner_step


def _run_inner_step(function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    params, loss_fn, alpha, first_order, query_loss = args
    with torch.enable_grad():
        leaves = _leaves(params)
        adapted = function(leaves, loss_fn, alpha, first_order)
        if adapted is None:
            return None
        values = _flat(adapted, leaves, "the result of `inner_step`")
        meta = _meta_gradient(query_loss(adapted), leaves)
    return torch.stack([values, meta])


def _step(params: Params, loss_fn: TaskLoss, alpha: float, create_graph: bool,
          update: Callable[[Tensor, Tensor], Tensor]) -> Params:
    gradients = torch.autograd.grad(loss_fn(params), list(params.values()),
                                    create_graph=create_graph)
    return {name: update(value, gradient)
            for (name, value), gradient in zip(params.items(), gradients, strict=True)}


_HESSIAN_HINT = (
    "the adapted parameters are right, but the meta-gradient through them is the first-order "
    "one: the Hessian term is missing. In second order (`first_order=False`) the gradient must "
    "stay part of the graph, so that autograd can differentiate it again in the outer step: "
    "pass create_graph=True to `torch.autograd.grad` (`create_graph=not first_order`), and do "
    "not `.detach()` the gradient or use `.backward()` and `.grad`.")

INNER_STEP_MISTAKES = (
    Mistake("no_second_order", _HESSIAN_HINT,
            lambda p, f, a, fo: _step(p, f, a, False, lambda v, g: v - a * g)),
    Mistake("ignored_first_order",
            "with `first_order=True` your meta-gradient is the second-order one. First-order "
            "MAML treats the inner gradient as a constant: build no graph of it "
            "(`create_graph=not first_order`, i.e. False here).",
            lambda p, f, a, fo: _step(p, f, a, True, lambda v, g: v - a * g)),
    Mistake("gradient_ascent",
            "your step goes up the loss (gradient ascent): theta' = theta - alpha * gradient, "
            "with a minus.",
            lambda p, f, a, fo: _step(p, f, a, not fo, lambda v, g: v + a * g)),
    Mistake("no_alpha",
            "you left out the step size: multiply the gradient by `alpha` before subtracting "
            "it.",
            lambda p, f, a, fo: _step(p, f, a, not fo, lambda v, g: v - g)),
    Mistake("returned_gradient",
            "you returned the step (alpha times the gradient) or the gradient itself; return "
            "the adapted parameters theta - alpha * gradient, a dict with the keys of `params`.",
            lambda p, f, a, fo: _step(p, f, a, not fo, lambda v, g: a * g)),
    Mistake("returned_gradient",
            "you returned the step (alpha times the gradient) or the gradient itself; return "
            "the adapted parameters theta - alpha * gradient, a dict with the keys of `params`.",
            lambda p, f, a, fo: _step(p, f, a, not fo, lambda v, g: g)),
)

_INNER_NAMES = ("params", "loss_fn", "alpha", "first_order", "query_loss (for the meta-gradient)")


def _inner_step_cases() -> tuple[Case, ...]:
    cases = []
    for description, model, n_support, alpha, first_order, seed in (
            ("linear model, 4 support points, second order", "linear", 4, 0.5, False, 1),
            ("linear model, 4 support points, first order", "linear", 4, 0.5, True, 2),
            ("2-3-2 MLP, 6 support points, second order", "mlp", 6, 0.4, False, 3),
            ("2-3-2 MLP, 6 support points, first order", "mlp", 6, 0.4, True, 4),
            ("2-3-2 MLP, 4 support points, alpha 2, second order", "mlp", 4, 2.0, False, 5)):
        params, support, query = _task(model, n_support, 6, seed)
        cases.append(Case(description, (params, support, alpha, first_order, query),
                          _INNER_NAMES))
    return tuple(cases)


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "leaf Variable that requires grad" in text or "a view of a leaf Variable" in text:
        return ("you updated a parameter in place (`p -= ...`, `p.sub_(...)`). The parameters "
                "theta must stay as they are (the outer loop differentiates with respect to "
                "them, and each task starts from them), and autograd forbids in-place changes "
                "of a leaf that requires grad: build new tensors, "
                "`{name: p - alpha * g for ...}`.")
    if "does not require grad and does not have a grad_fn" in text:
        return ("the loss is not connected to the parameters you differentiate: compute it as "
                "`loss_fn(params)` from the tensors you were given (not detached copies or "
                "`torch.no_grad()`), then differentiate with respect to those same tensors.")
    if "appears to not have been used in the graph" in text:
        return ("you differentiated with respect to tensors the loss was not computed from: "
                "differentiate `loss_fn(params)` with respect to `params.values()` (in "
                "`first_order_meta_gradient`: `query_loss(adapted)` with respect to "
                "`adapted.values()`).")
    if "backward through the graph a second time" in text:
        return ("a graph was used twice: compute the loss once per call and differentiate it "
                "once, with `torch.autograd.grad` rather than `.backward()`.")
    if "must be a dict" in text or "has no entry" in text:
        return ("return a dict with the same keys as `params`, e.g. "
                "`{name: ... for name, p in params.items()}` (`torch.autograd.grad` returns a "
                "tuple, in the order of the tensors you passed it).")
    if "must have the shape of the parameter" in text:
        return "each entry of the result must have the shape of the parameter of the same name."
    return None


def inner_step_spec() -> FunctionSpec:
    """The spec of ``inner_step`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="inner_step",
        reference=_package_step,
        cases=_inner_step_cases(),
        mistakes=INNER_STEP_MISTAKES,
        returns="a dict of the adapted parameters, by name",
        output_axes=("adapted params | meta-gradient", "entries"),
        error_hint=_error_hint,
        call=_run_inner_step,
        rtol=1e-6,
        atol=1e-9,
    )


# --------------------------------------------------------------------------------------------
# first_order_meta_gradient


def _run_meta_gradient(function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    params, _, query_loss, support_loss, alpha = args
    with torch.enable_grad():
        leaves = _leaves(params)
        adapted = _package_step(leaves, support_loss, alpha, first_order=False)
        gradient = function(leaves, adapted, query_loss)
        return None if gradient is None else _flat(gradient, leaves, "the meta-gradient")


def _reference_meta_gradient(params: Params, adapted: Params, query_loss: TaskLoss) -> Params:
    gradients = torch.autograd.grad(query_loss(adapted), list(adapted.values()))
    return dict(zip(adapted, gradients, strict=True))


def _gradient_at(params: Params, adapted: Params, query_loss: TaskLoss, at: Params) -> Params:
    gradients = torch.autograd.grad(query_loss(at), list(params.values()))
    return dict(zip(params, gradients, strict=True))


META_GRADIENT_MISTAKES = (
    Mistake("gradient_at_theta",
            "that is the gradient of the query loss at theta, the parameters before the inner "
            "step. MAML scores the *adapted* parameters: evaluate `query_loss(adapted)` and "
            "differentiate it with respect to `adapted.values()`.",
            lambda p, a, q: _gradient_at(p, a, q, at=p)),
    Mistake("second_order",
            "that is the exact, second-order meta-gradient: you differentiated "
            "`query_loss(adapted)` with respect to `params`, through the inner step. The "
            "first-order approximation treats d theta'/d theta as the identity: differentiate "
            "with respect to `adapted.values()` instead.",
            lambda p, a, q: _gradient_at(p, a, q, at=a)),
    Mistake("wrong_sign",
            "your meta-gradient has the wrong sign: return the gradient itself; the outer "
            "optimiser subtracts it.",
            lambda p, a, q: {name: -g for name, g in _reference_meta_gradient(p, a, q).items()}),
)

_META_NAMES = ("params", "adapted", "query_loss", "support_loss (adapted on)", "alpha")


def _meta_gradient_cases() -> tuple[Case, ...]:
    cases = []
    for description, model, alpha, seed in (
            ("linear model, alpha 0.5", "linear", 0.5, 11),
            ("2-3-2 MLP, alpha 0.4", "mlp", 0.4, 12),
            ("2-3-2 MLP, alpha 1.5", "mlp", 1.5, 13)):
        params, support, query = _task(model, 4, 6, seed)
        adapted = {name: value.detach()
                   for name, value in _package_step(params, support, alpha, False).items()}
        cases.append(Case(description, (params, adapted, query, support, alpha), _META_NAMES))
    return tuple(cases)


def first_order_meta_gradient_spec() -> FunctionSpec:
    """The spec of ``first_order_meta_gradient``."""
    return FunctionSpec(
        name="first_order_meta_gradient",
        reference=_reference_meta_gradient,
        cases=_meta_gradient_cases(),
        mistakes=META_GRADIENT_MISTAKES,
        returns="a dict of gradients, by parameter name",
        output_axes=("entries",),
        error_hint=_error_hint,
        call=_run_meta_gradient,
        rtol=1e-6,
        atol=1e-9,
    )


# --------------------------------------------------------------------------------------------
# reptile_update


def _reference_reptile_update(theta: Tensor, phis: Tensor, epsilon: float) -> Tensor:
    """What :class:`~fslearn.methods.reptile.Reptile` does: the gradient theta - mean(phi), then
    one step of plain SGD with learning rate epsilon."""
    weights = nn.Parameter(theta.detach().clone())
    weights.grad = theta - phis.mean(dim=0)
    torch.optim.SGD([weights], lr=epsilon).step()
    return weights.detach()


REPTILE_MISTAKES = (
    Mistake("wrong_sign",
            "you moved theta away from the adapted weights: the update is "
            "theta + epsilon * mean(phi - theta), towards them (as a gradient, theta - mean(phi) "
            "is subtracted).",
            lambda t, p, e: t - e * (p - t).mean(0)),
    Mistake("sum_not_mean",
            "you summed the differences phi - theta over the tasks; Reptile averages them, so "
            "that the step does not grow with the number of tasks.",
            lambda t, p, e: t + e * (p - t).sum(0)),
    Mistake("no_epsilon",
            "you left out the outer step size: theta + epsilon * mean(phi - theta). Without "
            "epsilon, theta jumps to the mean of the adapted weights.",
            lambda t, p, e: t + (p - t).mean(0)),
    Mistake("returned_step",
            "you returned the step epsilon * mean(phi - theta) only: add it to theta.",
            lambda t, p, e: e * (p - t).mean(0)),
    Mistake("forgot_theta",
            "you averaged the adapted weights phi instead of the differences phi - theta.",
            lambda t, p, e: t + e * p.mean(0)),
)

_REPTILE_NAMES = ("theta", "phis", "epsilon")


def _reptile_case(description: str, tasks: int, size: int, epsilon: float, seed: int) -> Case:
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(size, generator=generator, dtype=torch.float64).mul(4).round().div(4)
    phis = theta + torch.randn(tasks, size, generator=generator, dtype=torch.float64).mul(4) \
        .round().div(4)
    return Case(description, (theta, phis, epsilon), _REPTILE_NAMES)


def _reptile_cases() -> tuple[Case, ...]:
    by_hand = Case("2 tasks, 2 weights, epsilon 0.5",
                   (torch.tensor([0.0, 1.0], dtype=torch.float64),
                    torch.tensor([[1.0, 2.0], [3.0, 2.0]], dtype=torch.float64), 0.5),
                   _REPTILE_NAMES)
    return (
        by_hand,
        _reptile_case("3 tasks, 5 weights, epsilon 0.1", 3, 5, 0.1, seed=21),
        _reptile_case("1 task, 4 weights, epsilon 0.25", 1, 4, 0.25, seed=22),
        _reptile_case("4 tasks, 3 weights, epsilon 1", 4, 3, 1.0, seed=23),
    )


def reptile_update_spec() -> FunctionSpec:
    """The spec of ``reptile_update``."""
    return FunctionSpec(
        name="reptile_update",
        reference=_reference_reptile_update,
        cases=_reptile_cases(),
        mistakes=REPTILE_MISTAKES,
        returns="a tensor [P], the new theta",
        output_axes=("P",),
        atol=1e-9,
    )


# --------------------------------------------------------------------------------------------
# The exercise


def check_maml_inner_step(inner_step: Callable[..., Any],
                          first_order_meta_gradient: Callable[..., Any],
                          reptile_update: Callable[..., Any], *,
                          quiet: bool = False) -> CheckResult:
    r"""Check a student's ``inner_step``, ``first_order_meta_gradient`` and ``reptile_update``.

    * ``inner_step(params, loss_fn, alpha, first_order)`` gets ``params``, a dict of float64
      tensors that require grad, ``loss_fn`` (``loss_fn(params)`` is the support loss), a step
      size and a flag; it returns the dict of adapted parameters
      :math:`\theta - \alpha \nabla \mathcal{L}_S(\theta)`, differentiable with respect to
      ``params`` to second order unless ``first_order``.
    * ``first_order_meta_gradient(params, adapted, query_loss)`` returns, as a dict by name, the
      gradient of ``query_loss(adapted)`` at the adapted parameters.
    * ``reptile_update(theta, phis, epsilon)`` gets ``theta`` ``[P]`` and ``phis`` ``[tasks,
      P]`` and returns :math:`\theta + \epsilon \cdot \mathrm{mean}_\tau(\phi_\tau - \theta)`.

    Each function is checked on its own cases.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`, one verdict per function.
    """
    return check_functions(
        "exercise 5.1, MAML's inner step",
        [inner_step_spec(), first_order_meta_gradient_spec(), reptile_update_spec()],
        [inner_step, first_order_meta_gradient, reptile_update], quiet=quiet)
