"""Few-shot evaluation: mean accuracy over many test episodes with its 95% confidence interval.

A single episode's accuracy is noisy (5-way 1-shot with 15 queries per class scores in steps of
1/75), so papers report the mean over hundreds of episodes with the interval
``1.96 * std / sqrt(episodes)``, the normal approximation of the 95% confidence interval of the
mean. Two methods whose intervals overlap cannot be told apart by that experiment.

Each kind of test has its module, with its evaluate function and its result type (whose ``str``
is the summary ``fslearn evaluate`` prints):

* :mod:`fslearn.evaluation.classification`: N-way K-shot episodes (:func:`evaluate`,
  :class:`EvaluationResult`; :func:`confusion_counts`, :func:`embed_dataset`);
* :mod:`fslearn.evaluation.sequences`: sequence episodes, accuracy by presentation
  (:func:`evaluate_sequences`, :class:`SequenceResult`, :data:`SHOT_EQUIVALENT_NOTE`);
* :mod:`fslearn.evaluation.regression`: sinusoid regression after inner steps
  (:func:`evaluate_regression`, :class:`RegressionResult`);

and :mod:`fslearn.evaluation.common` what they share (:func:`confidence_interval95`,
:data:`MIN_REPORTED_EPISODES`). Every name is importable from ``fslearn.evaluation``.
"""

from fslearn.evaluation.classification import (
    EvaluationResult,
    confusion_counts,
    embed_dataset,
    evaluate,
)
from fslearn.evaluation.common import MIN_REPORTED_EPISODES as MIN_REPORTED_EPISODES
from fslearn.evaluation.common import confidence_interval95
from fslearn.evaluation.regression import RegressionResult, evaluate_regression
from fslearn.evaluation.sequences import SHOT_EQUIVALENT_NOTE, SequenceResult, evaluate_sequences

__all__ = [
    "SHOT_EQUIVALENT_NOTE",
    "EvaluationResult",
    "RegressionResult",
    "SequenceResult",
    "confidence_interval95",
    "confusion_counts",
    "embed_dataset",
    "evaluate",
    "evaluate_regression",
    "evaluate_sequences",
]
