"""Test-time support augmentation: the jitter's geometry against hand-computed draws, and the
augmented episodes against their invariants (shapes, labels, untouched queries, prototypes)."""

from __future__ import annotations

import pytest
import torch

from fslearn.augment import AffineJitter, SupportAugmented
from fslearn.data.episodes import EpisodeSampler
from fslearn.evaluation import evaluate
from fslearn.methods import PrototypicalNetwork

SIDE, CENTRE = 57, 28


def _dot(row: int = CENTRE, col: int = CENTRE + 12) -> torch.Tensor:
    """A smooth dot (a Gaussian of 2.5 pixels) on a black image ``[1, 1, 57, 57]``, whose
    sampled centre of mass follows the transformation (a one-pixel dot would snap to the
    grid)."""
    grid = torch.arange(SIDE, dtype=torch.float64)
    bump = torch.exp(-((grid[:, None] - row) ** 2 + (grid[None, :] - col) ** 2) / (2 * 2.5**2))
    return bump[None, None]


def _centre_of_mass(image: torch.Tensor) -> torch.Tensor:
    """``(row, col)`` of the image's mass."""
    side = image.shape[-1]
    grid = torch.arange(side, dtype=image.dtype)
    mass = image[0, 0]
    return torch.stack([(mass.sum(1) * grid).sum(), (mass.sum(0) * grid).sum()]) / mass.sum()


def test_no_jitter_is_the_identity():
    images = torch.rand(3, 1, 28, 28)
    out = AffineJitter(0, 0, 0)(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)


def test_scale_moves_a_dot_away_from_the_centre_by_the_drawn_zoom():
    """The draws come in the order angle, zoom, shift x, shift y (one uniform each): the zoom
    is recomputed here from the same generator and checked on a dot 12 pixels right of the
    centre. A zoom applied inverted (content shrunk where it should grow) fails."""
    jitter = AffineJitter(degrees=0, shift=0, scale=0.3)
    out = jitter(_dot(), torch.Generator().manual_seed(5))
    draws = torch.rand(2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    zoom = 1 + (2 * draws[1] - 1) * 0.3
    row, col = _centre_of_mass(out)
    assert abs(float(zoom) - 1) > 0.05  # this seed draws a zoom worth testing
    assert row == pytest.approx(CENTRE, abs=1e-6)
    assert col - CENTRE == pytest.approx(12 * float(zoom), abs=0.05)


def test_shift_moves_a_dot_by_the_drawn_fraction_of_the_side():
    jitter = AffineJitter(degrees=0, shift=0.2, scale=0)
    out = jitter(_dot(col=CENTRE), torch.Generator().manual_seed(1))
    draws = torch.rand(4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shift_x, shift_y = ((2 * draws[2:] - 1) * 0.2 * SIDE).tolist()
    row, col = _centre_of_mass(out)
    # affine_grid maps output to input coordinates: content moves against the grid's shift
    assert col - CENTRE == pytest.approx(-shift_x, abs=0.05)
    assert row - CENTRE == pytest.approx(-shift_y, abs=0.05)


def test_rotation_keeps_the_distance_to_the_centre():
    out = AffineJitter(degrees=90, shift=0, scale=0)(_dot(), torch.Generator().manual_seed(2))
    row, col = _centre_of_mass(out)
    assert float(torch.hypot(row - CENTRE, col - CENTRE)) == pytest.approx(12, abs=0.05)
    assert abs(float(row) - CENTRE) > 1  # it did turn


def test_jitter_is_a_function_of_the_generator():
    images = torch.rand(4, 1, 28, 28)
    first = AffineJitter()(images, torch.Generator().manual_seed(3))
    again = AffineJitter()(images, torch.Generator().manual_seed(3))
    other = AffineJitter()(images, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize("kwargs, name", [({"degrees": 200}, "degrees"), ({"shift": -0.1}, "shift"),
                                          ({"scale": 1.5}, "scale")])
def test_bad_jitter_ranges_are_refused(kwargs, name):
    with pytest.raises(ValueError, match=f"AffineJitter.{name} must be from 0"):
        AffineJitter(**kwargs)


def test_bad_copies_are_refused():
    with pytest.raises(ValueError, match="copies must be a whole number"):
        SupportAugmented(PrototypicalNetwork(), copies=-1)


def _episode(dataset, k_shot: int = 2):
    return EpisodeSampler(dataset, 5, k_shot, 3, tasks=2, seed=0).episode(0)


def test_augmented_episode_keeps_its_classes_in_order_and_its_queries(omniglot_small):
    episode = _episode(omniglot_small)
    augmented = SupportAugmented(PrototypicalNetwork(), copies=3).augment(episode)
    assert augmented.support_x.shape == (2, 5 * 2 * 4, 1, 28, 28)
    assert augmented.k_shot == 8
    expected = torch.arange(5).repeat_interleave(8).expand(2, -1)
    assert torch.equal(augmented.support_y, expected)
    # each class's own images come first, unchanged
    own = augmented.support_x.reshape(2, 5, 8, 1, 28, 28)[:, :, :2]
    assert torch.equal(own, episode.support_x.reshape(2, 5, 2, 1, 28, 28))
    assert augmented.query_x is episode.query_x and augmented.query_y is episode.query_y


def test_prototypes_average_the_jittered_copies(omniglot_small):
    """ProtoNet's prototype from the augmented support is the mean embedding of each class's
    images and their copies, computed here by hand from the same copies."""
    torch.manual_seed(0)
    method = PrototypicalNetwork().eval()
    episode = _episode(omniglot_small, k_shot=1)
    wrapper = SupportAugmented(method, copies=2).eval()
    with torch.no_grad():
        scores = wrapper(episode)
        wrapper.reset()
        augmented = wrapper.augment(episode)
        support = method.embed(augmented.support_x[0]).reshape(5, 3, -1)
        prototypes = support.mean(dim=1)
        queries = method.embed(episode.query_x[0])
        by_hand = -torch.cdist(queries, prototypes) ** 2
    torch.testing.assert_close(scores[0], by_hand, atol=1e-3, rtol=1e-4)


def test_no_copies_scores_as_the_method_does(omniglot_small):
    torch.manual_seed(0)
    method = PrototypicalNetwork().eval()
    episode = _episode(omniglot_small)
    with torch.no_grad():
        torch.testing.assert_close(SupportAugmented(method, copies=0)(episode), method(episode))


def test_an_evaluation_is_repeatable_from_a_fresh_wrapper(omniglot_small):
    torch.manual_seed(0)
    method = PrototypicalNetwork()
    results = [evaluate(SupportAugmented(method, copies=2), omniglot_small, 5, 1, n_query=2,
                        episodes=20).per_episode for _ in range(2)]
    assert results[0] == results[1]
