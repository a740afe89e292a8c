"""ProtoCLR (Medina et al. 2020): the contrastive episode builder (one source image per class,
distinct images, augmented copies, determinism, no labels), the augmentation, gradients, and
training through the command line with a resumed run."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
from conftest import make_dataset, train_interrupted_and_straight

from fslearn.checkpoints import load_checkpoint
from fslearn.cli import main
from fslearn.data.contrastive import (
    AUGMENTATION,
    ContrastiveEpisodeSampler,
    augment,
    crop_windows,
)
from fslearn.methods import METHODS, ProtoCLR
from fslearn.results import PAPER_RESULTS
from fslearn.training import TrainingConfig


def _images(n: int = 40, size: int = 12) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, size, size, generator=generator) * 255).to(torch.uint8)


def test_each_class_is_one_distinct_source_image():
    sampler = ContrastiveEpisodeSampler(_images(), n_way=6, k_shot=2, n_query=3, tasks=3, seed=4)
    for index in range(10):
        episode = sampler.episode(index)
        assert episode.support_x.shape == (3, 12, 1, 12, 12)
        assert episode.query_x.shape == (3, 18, 1, 12, 12)
        assert episode.support_y[0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        assert episode.query_y[0].tolist() == [n for n in range(6) for _ in range(3)]
        for task in range(3):
            assert len(set(episode.classes[task].tolist())) == 6  # distinct images
        assert torch.equal(episode.classes, sampler.sources(index))


def test_the_copies_come_from_their_source_image():
    images = _images()
    sampler = ContrastiveEpisodeSampler(images, n_way=4, k_shot=1, n_query=2, seed=1)
    episode = sampler.episode(0)
    # most copies correlate best with their own source (under the best of the four flips)
    sources = images[episode.classes[0]].float() / 255
    views = torch.cat([episode.support_x[0], episode.query_x[0]])
    labels = torch.cat([episode.support_y[0], episode.query_y[0]])
    ok = 0
    for view, label in zip(views, labels, strict=True):
        scores = []
        for source in sources:
            best = max(float(torch.corrcoef(torch.stack([
                view.flatten(), torch.flip(source, dims)[0].flatten()]))[0, 1])
                for dims in ((), (-1,), (-2,), (-1, -2)))
            scores.append(best)
        ok += int(max(range(4), key=scores.__getitem__) == int(label))
    assert ok >= 0.6 * len(views)


def test_episodes_are_deterministic_given_the_seed():
    images = _images()
    a = ContrastiveEpisodeSampler(images, 5, seed=7).episode(3)
    b = ContrastiveEpisodeSampler(images, 5, seed=7).episode(3)
    c = ContrastiveEpisodeSampler(images, 5, seed=8).episode(3)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    assert not torch.equal(a.query_x, c.query_x)
    assert not torch.equal(a.query_x, ContrastiveEpisodeSampler(images, 5, seed=7)
                           .episode(4).query_x)


def test_the_sampler_is_given_images_only():
    # the method hands the sampler the images, never the labels: scrambled labels change
    # nothing
    data = make_dataset([10] * 8, image_size=8)
    scrambled = type(data)(data.images, data.labels.flip(0), data.class_names, data.name)
    config = TrainingConfig(n_way=4, k_shot=1, n_query=2, seed=3)
    a = ProtoCLR().training_sampler(data, config).episode(2)
    b = ProtoCLR().training_sampler(scrambled, config).episode(2)
    assert torch.equal(a.query_x, b.query_x) and torch.equal(a.classes, b.classes)


def test_the_augmentation_keeps_shapes_and_values():
    images = torch.rand(64, 1, 28, 28, dtype=torch.float32)
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert float(out.min()) >= 0 and float(out.max()) <= 1 / (1 - AUGMENTATION["dropout"]) + 1e-6
    # about 30% of the pixels are dropped (plus erased rectangles and the crop's border)
    dropped = float((out == 0).float().mean())
    assert 0.25 < dropped < 0.6
    ones = torch.ones(200, 1, 28, 28)
    flipped = augment(ones, torch.Generator().manual_seed(1))
    assert float((flipped == 0).float().mean()) > 0.25


def _torchvision_crop_size(rng: random.Random, size: int = 28) -> tuple[int, int]:
    """RandomResizedCrop's window size, written out from its rule (10 tries, else the whole
    square image), with Python's random numbers."""
    low, high = (math.log(r) for r in AUGMENTATION["crop_ratio"])
    for _ in range(10):
        area = size * size * rng.uniform(*AUGMENTATION["crop_scale"])
        ratio = math.exp(rng.uniform(low, high))
        w, h = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < w <= size and 0 < h <= size:
            return h, w
    return size, size


def test_crop_windows_follow_torchvisions_rule():
    # the same distribution as the rule written out: about 2% of windows are the whole image
    # (clipping oversized windows instead would make it a third), the same mean area
    top, left, h, w = crop_windows(100_000, 28, 28, torch.Generator().manual_seed(0))
    assert bool(((top >= 0) & (left >= 0) & (top + h <= 28) & (left + w <= 28)).all())
    rng = random.Random(0)
    reference = [_torchvision_crop_size(rng) for _ in range(100_000)]
    whole = float(((h == 28) & (w == 28)).float().mean())
    assert whole == pytest.approx(sum(r == (28, 28) for r in reference) / 1e5, abs=0.003)
    assert whole < 0.05
    assert float((h * w).float().mean()) == pytest.approx(
        sum(a * b for a, b in reference) / 1e5, rel=0.005)
    # positions are uniform: windows of a side touch each border about equally often
    small = (h < 28) & (w < 28)
    assert float((top[small] == 0).float().mean()) == pytest.approx(
        float((top[small] + h[small] == 28).float().mean()), abs=0.01)


def test_the_support_copy_is_the_image_itself_unless_asked():
    images = _images()
    clean = ContrastiveEpisodeSampler(images, n_way=5, k_shot=1, n_query=3, seed=2).episode(0)
    torch.testing.assert_close(clean.support_x[0], images[clean.classes[0]].float() / 255)
    assert not torch.equal(clean.query_x[0, ::3], clean.support_x[0])
    augmented = ContrastiveEpisodeSampler(images, n_way=5, k_shot=1, n_query=3, seed=2,
                                          augment_support=True).episode(0)
    assert not torch.equal(augmented.support_x[0], images[augmented.classes[0]].float() / 255)
    assert torch.equal(augmented.classes, clean.classes)


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="only 40"):
        ContrastiveEpisodeSampler(_images(), n_way=41)
    with pytest.raises(ValueError, match="n_query must be a positive integer"):
        ContrastiveEpisodeSampler(_images(), n_way=4, n_query=0)


def test_the_loss_has_gradients_for_every_parameter():
    torch.manual_seed(0)
    method = ProtoCLR()
    images = (torch.rand(20, 1, 28, 28) * 255).to(torch.uint8)
    episode = ContrastiveEpisodeSampler(images, 5, 1, 3, seed=0).episode(0)
    loss, _ = method.loss(episode)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in method.parameters())


def test_training_resumes_to_the_same_weights(tmp_path, omniglot_small):
    config = TrainingConfig(n_way=8, k_shot=1, n_query=2, episodes=5, val_every=2,
                            val_episodes=4, val_way=5, val_query=2, checkpoint_every=2, seed=4)

    def make(seed: int) -> ProtoCLR:
        torch.manual_seed(seed)
        return ProtoCLR()

    train_interrupted_and_straight(make, omniglot_small, config, tmp_path, omniglot_small,
                                   crash_after=4)


def test_the_command_line_trains_it(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "protoclr", "--way", "10", "--query", "2", "--episodes", "2",
                 "--val-every", "2", "--val-episodes", "4", "--checkpoint-every", "2",
                 "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "last" / "checkpoint.json").read_text())
    assert record["config"]["n_way"] == 10 and record["config"]["k_shot"] == 1
    assert record["config"]["sampler"] == {"augment_support": False}  # the authors' default
    assert isinstance(load_checkpoint(out / "last")[0], ProtoCLR)
    again = tmp_path / "again"
    assert main(["train", "protoclr", "--way", "10", "--query", "2", "--episodes", "1",
                 "--val-every", "0", "--augment-support", "--out", str(again),
                 "--no-progress"]) == 0
    record = json.loads((again / "last" / "checkpoint.json").read_text())
    assert record["config"]["sampler"] == {"augment_support": True}


def test_the_papers_figures_are_declared():
    assert METHODS["protoclr"] is ProtoCLR
    assert PAPER_RESULTS["protoclr"] == {(5, 1): 0.88, (5, 5): 0.9648}
    assert PAPER_RESULTS["unsupervised"]["umtra"] == {(5, 1): 0.838, (5, 5): 0.9543}
    assert PAPER_RESULTS["unsupervised"]["cactus_protonets"] == {(5, 1): 0.6812,
                                                                 (5, 5): 0.8358}
    assert ProtoCLR.training_defaults["n_way"] == 50
