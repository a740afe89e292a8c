"""Checkers of the course's exercises (the notebooks in the repository's ``exercises/`` folder).

Each checker runs the student's functions on small hand-designed cases, compares them with the
package's own implementation and displays a verdict: a success message, "not done yet" for the
stub of a student notebook, or what went wrong with a hint (typical mistakes are recognised by
comparing with wrong variants; exceptions are reported, never raised). It returns a
:class:`CheckResult` (``passed``, ``message``, ``mistakes``, ``use``)::

    from fslearn.exercises import check_confidence_interval

    result = check_confidence_interval(confidence_interval95)
    ci95 = result.use(confidence_interval95)  # yours once it passes, else the reference

Exercises:

* :func:`check_confidence_interval`: ``confidence_interval95(accuracies)`` (exercise 1.1).
* :func:`check_prototypes`: ``prototypes(support_z, support_y, n_way)`` and
  ``squared_distances(query_z, centres)`` (exercise 2.1).
* :func:`check_maml_inner_step`: ``inner_step(params, loss_fn, alpha, first_order)``,
  ``first_order_meta_gradient(params, adapted, query_loss)`` and
  ``reptile_update(theta, phis, epsilon)`` (exercise 5.1).
* :func:`check_ridge_head`: ``ridge_woodbury(x, y, lam)`` and
  ``ridge_logits(support_z, support_y, query_z, n_way, lam, scale, bias)`` (exercise 5.2), each
  checked on its own.
* :func:`check_lrua`: ``update_usage(usage, read_weights, write_weights, gamma)``,
  ``least_used(usage, n)`` and ``lrua_write_weights(gate, prev_read_weights, prev_least_used)``
  (exercise 6.1), each checked on its own: ``check_lrua(least_used=least_used)``.
* :func:`check_siamese_losses`: ``contrastive_loss(distance, same, margin)`` and
  ``triplet_loss(positive_distance, negative_distance, margin)`` (exercise 4.1), each checked on
  its own.
* :func:`check_matching_attention`: ``attention(query_z, support_z)`` and
  ``predict(attention, support_y, n_way)`` (exercise 4.2), each checked on its own.
* :func:`check_cosine_classifier`: ``cosine_logits(z, weight, scale)`` (exercise 3.1).
* :func:`check_soft_kmeans`: ``soft_kmeans_step(support_z, support_y, unlabelled_z, n_way)``
  (exercise 7.1).
* :func:`check_fedavg_step`: ``fedavg_step(client_weights, num_examples)`` (exercise 7.2).
* :func:`check_paired_difference`: ``paired_difference(a, b)`` (exercise 8.1).

The framework (:mod:`fslearn.exercises.checker`) is shared by every exercise.
"""

from fslearn.exercises.checker import (
    Case,
    CheckResult,
    FunctionSpec,
    FunctionVerdict,
    Mistake,
    check_functions,
    show,
)
from fslearn.exercises.confidence_interval import check_confidence_interval
from fslearn.exercises.cosine_classifier import check_cosine_classifier
from fslearn.exercises.fedavg_step import check_fedavg_step
from fslearn.exercises.lrua import check_lrua
from fslearn.exercises.maml import check_maml_inner_step
from fslearn.exercises.matching_attention import check_matching_attention
from fslearn.exercises.paired_difference import check_paired_difference
from fslearn.exercises.prototypes import check_prototypes
from fslearn.exercises.ridge_head import check_ridge_head
from fslearn.exercises.siamese_losses import check_siamese_losses
from fslearn.exercises.soft_kmeans import check_soft_kmeans

__all__ = [
    "Case",
    "CheckResult",
    "FunctionSpec",
    "FunctionVerdict",
    "Mistake",
    "check_confidence_interval",
    "check_cosine_classifier",
    "check_fedavg_step",
    "check_functions",
    "check_lrua",
    "check_maml_inner_step",
    "check_matching_attention",
    "check_paired_difference",
    "check_prototypes",
    "check_ridge_head",
    "check_siamese_losses",
    "check_soft_kmeans",
    "show",
]
