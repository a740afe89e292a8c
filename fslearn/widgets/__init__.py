"""Interactive widgets for the course book, each with a static matplotlib twin.

A rendered book page has no kernel, so its widgets show only the state they were saved in; every
widget here therefore comes with a function that draws the same picture as a plain matplotlib
figure, which the book shows beside it. One module per chapter, all re-exported here:

* :mod:`~fslearn.widgets.episodes` (chapter 1), :func:`plot_episode` /
  :func:`episode_explorer`: the support and query sets of an N-way K-shot episode, one row per
  class.
* :mod:`~fslearn.widgets.prototypes` (chapter 2), :func:`plot_prototypes` /
  :func:`prototype_explorer`: class prototypes and the decision regions of the
  squared-Euclidean prototype classifier on 2-D points (:func:`gaussian_classes`), as the number
  of shots grows.
* :mod:`~fslearn.widgets.attention` (chapter 4), :func:`plot_matching_attention` /
  :func:`attention_explorer`: a Matching Network's attention over the support set for one query
  (:func:`matching_attention`), and the class probabilities it and other methods give that query
  (:func:`method_probabilities`).
* :mod:`~fslearn.widgets.sinusoid` (chapter 5), :func:`plot_sinusoid_fits` /
  :func:`sinusoid_explorer`: sinusoid regression models (MAML, the pretrained baseline) fitted to
  one task after a few gradient steps on ``K`` points (:func:`sinusoid_fits`).
* :mod:`~fslearn.widgets.memory` (chapter 6), :func:`plot_memory` / :func:`memory_explorer`
  (with :func:`plot_memory_step`): the external memory of a memory-augmented network (MANN)
  during one sequence episode: where it wrote and read at every step, the slots' usage, and
  whether each answer was right; :func:`memory_trace` (in :mod:`~fslearn.widgets.mann_trace`)
  runs the model once and keeps all of it (an :class:`EpisodeTrace`).

* :mod:`~fslearn.widgets.attributions` (section 7.6), :func:`plot_attributions` /
  :func:`attribution_explorer`: why a metric method classified one query as it did: the
  support set, the distances to the prototypes, and Captum's attributions of the decision to
  the pixels of the query and of a support image.

:mod:`~fslearn.widgets._explorer` holds what they share. matplotlib and ipywidgets are book
extras, imported only when a function needs them; without them the functions raise an
:class:`ImportError` that says how to install them (``pip install 'fslearn[book]'``). Figures are
built with :class:`matplotlib.figure.Figure`, not ``pyplot``, so nothing is drawn or kept behind
the caller's back.
"""

from __future__ import annotations

# _explorer_class is re-exported for the tests, which clear its cache to simulate a missing
# ipywidgets
from fslearn.widgets._explorer import _explorer_class as _explorer_class
from fslearn.widgets.attention import (
    attention_explorer,
    matching_attention,
    method_probabilities,
    plot_matching_attention,
)
from fslearn.widgets.attributions import attribution_explorer, plot_attributions
from fslearn.widgets.episodes import episode_explorer, plot_episode
from fslearn.widgets.mann_trace import EpisodeTrace, memory_trace
from fslearn.widgets.memory import memory_explorer, plot_memory, plot_memory_step
from fslearn.widgets.prototypes import gaussian_classes, plot_prototypes, prototype_explorer
from fslearn.widgets.sinusoid import plot_sinusoid_fits, sinusoid_explorer, sinusoid_fits

__all__ = [
    "EpisodeTrace",
    "attention_explorer",
    "attribution_explorer",
    "episode_explorer",
    "gaussian_classes",
    "matching_attention",
    "memory_explorer",
    "memory_trace",
    "method_probabilities",
    "plot_attributions",
    "plot_episode",
    "plot_matching_attention",
    "plot_memory",
    "plot_memory_step",
    "plot_prototypes",
    "plot_sinusoid_fits",
    "prototype_explorer",
    "sinusoid_explorer",
    "sinusoid_fits",
]
