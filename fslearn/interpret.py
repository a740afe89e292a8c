r"""Why did a metric method decide what it did? Attributions of one query's decision to pixels.

For a metric method (Prototypical, Matching, Relation networks: scores from embeddings) and one
task of an episode, the support set is fixed and the decision about a query image :math:`x` is
a function of its pixels alone,

.. math:: s_n(x) = \text{score of class } n \text{ for } x \text{ against the support set}

(for a Prototypical Network :math:`s_n(x) = -\lVert f_\theta(x) - c_n \rVert^2`).
:func:`query_attributions` asks Captum, PyTorch's attribution library (``pip install
'fslearn[interpret]'``), how much each pixel contributed to :math:`s_n(x)`:

* **integrated gradients** (Sundararajan et al. 2017): :math:`(x_i - x'_i) \int_0^1
  \partial s_n / \partial x_i \,(x' + \alpha (x - x'))\, d\alpha` from a baseline :math:`x'` (a
  blank image); the attributions add up to :math:`s_n(x) - s_n(x')` (completeness), and Captum
  reports how far its numerical integral is from that;
* **occlusion** (Zeiler and Fergus 2014): :math:`s_n(x) - s_n(x \text{ with a window blanked})`,
  for a window slid over the image, averaged over the windows that cover each pixel.

:func:`support_attributions` does the same for one *support* image, whose pixels move its
class's prototype: how each of them pulled the query towards (or away from) that class.

The method is evaluated in eval mode (batch norm with its running statistics), so an image's
score does not depend on the other images Captum evaluates with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from fslearn.data.episodes import Episode
from fslearn.methods.base import MetricMethod

__all__ = ["Attribution", "decision_function", "query_attributions", "support_attributions",
           "support_decision_function"]

How = Literal["integrated_gradients", "occlusion"]


@dataclass(frozen=True)
class Attribution:
    """The attribution of one decision to an image's pixels.

    Attributes:
        map: ``[C, H, W]`` each pixel's contribution to the score (same units as the score).
        target: the class (episode label) whose score is explained.
        score: :math:`s_n(x)`, the score of ``target`` for the image as it is.
        baseline_score: :math:`s_n(x')` with the image replaced by the baseline.
        delta: integrated gradients only: ``map.sum() - (score - baseline_score)``, the error
            of the numerical integral (0 for an exact one); None for occlusion.
    """

    map: Tensor
    target: int
    score: float
    baseline_score: float
    delta: float | None = None


def _captum():  # -> module; imported late: captum is an optional extra
    try:
        import captum.attr
    except ImportError as error:
        raise ImportError(f"fslearn.interpret needs Captum ({error}): pip install "
                          f"'fslearn[interpret]'.") from error
    return captum.attr


@contextmanager
def _eval_mode(method: MetricMethod) -> Iterator[None]:
    was_training = method.training
    method.eval()
    try:
        yield
    finally:
        method.train(was_training)


def _check(method: MetricMethod, episode: Episode, task: int) -> None:
    if not isinstance(method, MetricMethod):
        raise TypeError(f"{type(method).__name__} is not a metric method: attributions here "
                        f"need scores from embeddings (protonet, matchingnet, relationnet).")
    if not 0 <= task < episode.tasks:
        raise ValueError(f"task {task} is not in the episode (it has {episode.tasks}).")


def decision_function(method: MetricMethod, episode: Episode, task: int = 0
                      ) -> Callable[[Tensor], Tensor]:
    """``f(x)``: query images ``[B, C, H, W]`` -> scores ``[B, n_way]`` against task
    ``task``'s support set, embedded once."""
    _check(method, episode, task)
    with torch.no_grad():
        support_z = method.embed(episode.support_x[task])[None]
    support_y = episode.support_y[task][None]

    def scores(x: Tensor) -> Tensor:
        return method.scores(support_z, support_y, method.embed(x)[None], episode.n_way)[0]

    return scores


def support_decision_function(method: MetricMethod, episode: Episode, support_index: int,
                              query_index: int, task: int = 0) -> Callable[[Tensor], Tensor]:
    """``f(x)``: support image ``support_index`` replaced by each of ``x: [B, C, H, W]`` ->
    the scores ``[B, n_way]`` of query ``query_index``."""
    _check(method, episode, task)
    with torch.no_grad():
        support_z = method.embed(episode.support_x[task])
        query_z = method.embed(episode.query_x[task][query_index][None])
    support_y = episode.support_y[task]

    def scores(x: Tensor) -> Tensor:
        replaced = support_z.expand(len(x), -1, -1).clone()
        replaced[:, support_index] = method.embed(x)
        return method.scores(replaced, support_y.expand(len(x), -1),
                             query_z.expand(len(x), -1, -1), episode.n_way)[:, 0]

    return scores


def _attribute(function: Callable[[Tensor], Tensor], image: Tensor, target: int | None,
               how: How, baseline: float, n_steps: int, window: int, stride: int
               ) -> Attribution:
    attr = _captum()
    x = image[None]
    blank = torch.full_like(x, baseline)
    with torch.no_grad():
        scores = function(torch.cat([x, blank]))
    target = int(scores[0].argmax()) if target is None else int(target)
    if not 0 <= target < scores.shape[1]:
        raise ValueError(f"target {target} is not a class of the episode "
                         f"(0..{scores.shape[1] - 1}).")
    delta = None
    if how == "integrated_gradients":
        found, error = attr.IntegratedGradients(function).attribute(
            x, baselines=blank, target=target, n_steps=n_steps, return_convergence_delta=True)
        delta = float(error.sum())
    elif how == "occlusion":
        channels = x.shape[1]
        found = attr.Occlusion(function).attribute(
            x, sliding_window_shapes=(channels, window, window),
            strides=(channels, stride, stride), baselines=baseline, target=target)
    else:
        raise ValueError(f"how must be 'integrated_gradients' or 'occlusion', got {how!r}")
    return Attribution(found[0].detach(), target, float(scores[0, target]),
                       float(scores[1, target]), delta)


def query_attributions(method: MetricMethod, episode: Episode, query_index: int, *,
                       task: int = 0, target: int | None = None,
                       how: How = "integrated_gradients", baseline: float = 0.0,
                       n_steps: int = 64, window: int = 4, stride: int = 2) -> Attribution:
    """Each pixel's contribution to query ``query_index``'s score for ``target`` (default:
    the class it is assigned to) in task ``task`` of ``episode``.

    Args:
        how: ``"integrated_gradients"`` (``n_steps`` Gauss-Legendre points from a baseline
            image of value ``baseline``: 0 is blank paper for Omniglot's ink = 1) or
            ``"occlusion"`` (``window`` x ``window`` squares set to ``baseline``, moved by
            ``stride`` pixels).
    """
    _check(method, episode, task)
    with _eval_mode(method):
        function = decision_function(method, episode, task)
        return _attribute(function, episode.query_x[task][query_index], target, how, baseline,
                          n_steps, window, stride)


def support_attributions(method: MetricMethod, episode: Episode, support_index: int,
                         query_index: int, *, task: int = 0, target: int | None = None,
                         how: How = "integrated_gradients", baseline: float = 0.0,
                         n_steps: int = 64, window: int = 4, stride: int = 2) -> Attribution:
    """Each pixel of support image ``support_index``'s contribution to query
    ``query_index``'s score for ``target`` (default: the class the query is assigned to);
    options as :func:`query_attributions`."""
    _check(method, episode, task)
    with _eval_mode(method):
        function = support_decision_function(method, episode, support_index, query_index, task)
        return _attribute(function, episode.support_x[task][support_index], target, how,
                          baseline, n_steps, window, stride)
