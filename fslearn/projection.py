r"""How far would a run have to go? A power law fitted to a validation curve, and the steps it
projects for a target accuracy.

Learning curves of few-shot models on Omniglot flatten slowly; a common description of the
validation *error* after :math:`t` training steps is a power law with a floor,

.. math:: e(t) = c + a\,t^{-b}, \qquad a > 0,\ b > 0,\ 0 \le c < \min_t e(t),

where :math:`c` is the error the recipe would keep forever. :func:`fit_learning_curve` fits it
by least squares on the errors: for each floor :math:`c` on a fine grid, :math:`\log(e - c)` is
linear in :math:`\log t` (ordinary least squares gives :math:`a` and :math:`b`), and the floor
with the smallest squared error in :math:`e` is kept. :meth:`LearningCurveFit.steps_to` inverts
the fit.

A projection, not a promise: the fit assumes the recipe (learning-rate schedule included)
continues as it was, and it rests on validation figures that carry their own noise. Use it to say
whether a paper's figure is within a budget's reach, and roughly at what cost; say so when the
figure lies below the fitted floor (:meth:`LearningCurveFit.steps_to` returns None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LearningCurveFit", "fit_learning_curve"]

#: floors tried between 0 and just under the smallest observed error
FLOOR_GRID = 2000


@dataclass(frozen=True)
class LearningCurveFit:
    """``error(t) = floor + scale * t ** -exponent`` with its fit's root-mean-square residual.

    Attributes:
        floor: the asymptotic error :math:`c` (accuracy ``1 - floor`` at infinite budget).
        scale: :math:`a`.
        exponent: :math:`b`.
        rms: root-mean-square residual of the fit, in error (fraction) units.
        points: how many validation points it was fitted to.
    """

    floor: float
    scale: float
    exponent: float
    rms: float
    points: int

    @property
    def ceiling(self) -> float:
        """The accuracy the fitted curve approaches, ``1 - floor``."""
        return 1.0 - self.floor

    def accuracy_at(self, step: float) -> float:
        """The fitted accuracy after ``step`` training steps (``step > 0``)."""
        if step <= 0:
            raise ValueError(f"step must be positive, got {step}")
        return 1.0 - (self.floor + self.scale * step ** -self.exponent)

    def steps_to(self, accuracy: float) -> float | None:
        """The training steps at which the fitted curve reaches ``accuracy``; None when
        ``accuracy`` is at or above the curve's ceiling (out of this recipe's reach)."""
        if not 0 < accuracy < 1:
            raise ValueError(f"accuracy must be a fraction in (0, 1), got {accuracy}")
        gap = (1.0 - accuracy) - self.floor
        if gap <= 1e-12:  # at the ceiling, up to float rounding
            return None
        return (self.scale / gap) ** (1.0 / self.exponent)


def fit_learning_curve(steps: Sequence[float], accuracies: Sequence[float]
                       ) -> LearningCurveFit:
    """Fit ``1 - accuracy = floor + scale * step ** -exponent`` to a validation curve.

    Args:
        steps: training steps of the validation points, increasing and positive.
        accuracies: validation accuracies (fractions) at those steps.

    Raises:
        ValueError: fewer than 3 points, steps not increasing and positive, accuracies outside
            (0, 1), or a curve whose error does not fall (no decreasing power law fits it).
    """
    t = np.asarray(steps, dtype=np.float64)
    acc = np.asarray(accuracies, dtype=np.float64)
    if t.shape != acc.shape or t.ndim != 1:
        raise ValueError(f"steps and accuracies must be two lists of one length, got "
                         f"{t.shape} and {acc.shape}")
    if len(t) < 3:
        raise ValueError(f"a learning curve needs at least 3 validation points, got {len(t)}")
    if not (np.all(t > 0) and np.all(np.diff(t) > 0)):
        raise ValueError("steps must be positive and increasing")
    if not np.all((acc > 0) & (acc < 1)):
        raise ValueError("accuracies must be fractions in (0, 1), not percentages")
    error = 1.0 - acc
    log_t = np.log(t)
    best: tuple[float, float, float, float] | None = None
    for floor in np.linspace(0.0, error.min(), FLOOR_GRID, endpoint=False):
        slope, intercept = np.polyfit(log_t, np.log(error - floor), 1)
        if slope >= 0:  # an error that does not fall with training
            continue
        fitted = floor + math.exp(intercept) * t ** slope
        sse = float(np.sum((fitted - error) ** 2))
        if best is None or sse < best[0]:
            best = (sse, float(floor), math.exp(intercept), -float(slope))
    if best is None:
        raise ValueError("the validation error does not fall over these steps: no decreasing "
                         "power law fits it")
    sse, floor, scale, exponent = best
    return LearningCurveFit(floor=floor, scale=scale, exponent=exponent,
                            rms=math.sqrt(sse / len(t)), points=len(t))
