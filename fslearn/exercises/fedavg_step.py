r"""Exercise 7.2, the server's step of federated averaging (McMahan et al., 2017):
``fedavg_step``.

``fedavg_step(client_weights, num_examples)`` gets the weights the clients of a round sent back,
one row per client, ``[clients, P]`` (float64), and their numbers of training examples
``[clients]`` (int64), and returns the new global weights ``[P]``: the average of the rows,
each weighted by its client's share of the examples,

.. math:: \theta_{r+1} = \sum_k \frac{n_k}{\sum_j n_j}\, \theta_r^k .

The reference is :func:`fslearn.federated.aggregate`, the package's server step.

The cases have unequal counts (so an unweighted mean shows), counts that do not add up to one
(so unnormalised weights show), several clients and parameters. Recognised: the unweighted mean;
the weights not normalised (the weighted sum, or divided by the number of clients instead of the
total count); weights other than the counts' shares (their inverses, a softmax of the counts,
the square roots of the counts); the plain sum of the rows; the integer division that rounds every
weight to 0. Changing ``client_weights`` or ``num_examples`` in place is caught by the checker
framework (``modified_input``): the clients' arrays belong to the caller.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from fslearn.exercises.checker import Case, CheckResult, FunctionSpec, Mistake, check_functions
from fslearn.federated import ClientUpdate, aggregate

__all__ = ["FEDAVG_MISTAKES", "check_fedavg_step", "fedavg_step_spec"]

_NAMES = ("client_weights", "num_examples")


def _reference(client_weights: Tensor, num_examples: Tensor) -> Tensor:
    updates = [ClientUpdate([row.numpy()], int(count), client)
               for client, (row, count) in enumerate(zip(client_weights, num_examples,
                                                         strict=True))]
    return torch.from_numpy(aggregate(updates)[0])


def _weighted_by(weigh: Callable[[Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """The weighted sum of the rows with the weights ``weigh(num_examples)``."""
    def variant(client_weights: Tensor, num_examples: Tensor) -> Tensor:
        weights = weigh(num_examples.to(client_weights.dtype))
        return (weights[:, None] * client_weights).sum(dim=0)
    return variant


_RULE = ("each client's weight is its share of the examples, `num_examples / "
         "num_examples.sum()` (floats that add up to 1), and the new weights are "
         "`(shares[:, None] * client_weights).sum(dim=0)`")

FEDAVG_MISTAKES = (
    Mistake("unweighted_mean",
            "this is the plain mean of the clients' weights: a client with 1000 examples counts "
            f"as much as one with 10. {_RULE}.",
            lambda w, n: w.mean(dim=0)),
    Mistake("not_normalised",
            "you weighted each client by its number of examples but did not divide by the "
            "total, so the result is about sum(n_k) times too large. "
            f"{_RULE}.",
            _weighted_by(lambda n: n)),
    Mistake("divided_by_clients",
            "you divided the count-weighted sum by the number of clients; divide by the total "
            f"number of examples instead, so that the weights add up to 1: {_RULE}.",
            _weighted_by(lambda n: n / len(n))),
    Mistake("inverse_counts",
            "your weights are largest for the clients with the *fewest* examples (1 / n_k); "
            f"FedAvg gives more weight to more data: {_RULE}.",
            _weighted_by(lambda n: (1 / n) / (1 / n).sum())),
    Mistake("softmax_counts",
            "your weights are a softmax of the counts, which gives (almost) all the weight to "
            f"the largest client; the weights are proportional to the counts: {_RULE}.",
            _weighted_by(lambda n: n.softmax(dim=0))),
    Mistake("sqrt_counts",
            "your weights are proportional to the square roots of the counts; FedAvg's are "
            f"proportional to the counts themselves: {_RULE}.",
            _weighted_by(lambda n: n.sqrt() / n.sqrt().sum())),
    Mistake("plain_sum",
            f"you added the clients' weights without weighting or dividing: {_RULE}.",
            lambda w, n: w.sum(dim=0)),
    Mistake("integer_division",
            "every weight came out 0: `num_examples` holds integers, and `//` (or an integer "
            "tensor's floor division) rounds each share down to 0. Divide with `/`, which gives "
            f"floats: {_RULE}.",
            lambda w, n: torch.zeros(w.shape[1], dtype=w.dtype)),
)


def _case(description: str, counts: list[int], parameters: int, seed: int) -> Case:
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(len(counts), parameters, generator=generator,
                          dtype=torch.float64).mul(4).round().div(4)
    return Case(description, (weights, torch.tensor(counts)), _NAMES)


def _cases() -> tuple[Case, ...]:
    by_hand = Case("2 clients with 300 and 100 examples, 2 parameters",
                   (torch.tensor([[3.0, -1.0], [1.0, 2.0]], dtype=torch.float64),
                    torch.tensor([300, 100])), _NAMES)
    return (
        by_hand,
        _case("3 clients with 20, 5 and 75 examples, 4 parameters", [20, 5, 75], 4, seed=81),
        _case("5 clients with 280 to 1100 examples (Omniglot alphabets), 6 parameters",
              [280, 1100, 400, 320, 800], 6, seed=82),
        _case("1 client with 7 examples, 3 parameters", [7], 3, seed=83),
    )


def _error_hint(error: BaseException) -> str | None:
    text = str(error)
    if "result type Float can't be cast" in text or "can't be cast to the desired output" in text:
        return ("`num_examples` holds integers: an in-place division of it cannot store "
                "fractions. Compute new tensors, `shares = num_examples / num_examples.sum()`.")
    if "must match the size of tensor" in text:
        return ("the shares are [clients] and the weights [clients, P]: give the shares a "
                "second axis, `shares[:, None] * client_weights`, before summing over dim 0.")
    return None


def fedavg_step_spec() -> FunctionSpec:
    """The spec of ``fedavg_step`` (cases, reference and typical mistakes)."""
    return FunctionSpec(
        name="fedavg_step",
        reference=_reference,
        cases=_cases(),
        mistakes=FEDAVG_MISTAKES,
        returns="a tensor [P]",
        output_axes=("P",),
        error_hint=_error_hint,
    )


def check_fedavg_step(fedavg_step: Callable[[Tensor, Tensor], Tensor], *,
                      quiet: bool = False) -> CheckResult:
    """Check a student's ``fedavg_step`` and display the verdict.

    ``fedavg_step(client_weights, num_examples)`` gets float64 ``client_weights`` ``[clients,
    P]`` (one row per client) and int64 ``num_examples`` ``[clients]``, and must return the
    weighted average ``[P]`` without changing either argument.

    Args:
        fedavg_step: the student's function.
        quiet: return the result without displaying it.

    Returns:
        The :class:`~fslearn.exercises.checker.CheckResult`.
    """
    return check_functions("exercise 7.2, the FedAvg server step", [fedavg_step_spec()],
                           [fedavg_step], quiet=quiet)
