"""Classify new images: "here are a few labelled images of my classes; what are these?"

The labelled images (the *support set*) are a folder with one subfolder per class, as many images
per class as you have (classes may have different numbers). Each new image (a *query*) is scored
by the method exactly as in a test episode, and gets the class with the highest probability and
the runner-up::

    from fslearn import predict
    for p in predict("protonet-omniglot", support="my_support/", query="new_images/"):
        print(p.image, p.label, p.probability)

The images are prepared as the checkpoint's training images were (size, channels, and the
inversion of dark-on-light drawings that the Omniglot loader applies), unless told otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from fslearn._modes import evaluation_mode
from fslearn.checkpoints import load_checkpoint
from fslearn.data.dataset import FewShotDataset, to_float
from fslearn.data.episodes import Episode
from fslearn.data.errors import DataError
from fslearn.data.folder import (
    find_images,
    image_channels,
    load_image_files,
    load_image_folder,
)
from fslearn.methods.base import FewShotMethod

__all__ = [
    "ImagePreparation",
    "Prediction",
    "check_channels",
    "class_probabilities",
    "format_predictions",
    "image_preparation",
    "predict",
]

_CHANNEL_WORDS = {1: "greyscale images (1 channel)", 3: "colour images (3 channels)"}


@dataclass(frozen=True)
class ImagePreparation:
    """How images are turned into a model's input.

    Attributes:
        image_size: side of the square images, in pixels.
        channels: 1 (greyscale) or 3 (RGB) as the model takes them.
        invert: ``255 - pixel``: dark-on-light drawings become light-on-dark.
    """

    image_size: int
    channels: int
    invert: bool

    def describe(self) -> str:
        words = "greyscale" if self.channels == 1 else "RGB"
        inverted = ", inverted (dark ink becomes light)" if self.invert else ""
        return f"{self.image_size}x{self.image_size} {words}{inverted}"


def image_preparation(method: FewShotMethod, record: dict[str, Any] | None = None
                      ) -> ImagePreparation:
    """The preparation a checkpoint's images had in training, from its record.

    Omniglot's loader inverts the black-on-white drawings (ink = 255), so a model trained on it
    expects inverted images; a model trained on a folder records its own settings.
    """
    data = (record or {}).get("data", {})
    channels = int(data.get("channels", method.hparams.get("in_channels", 1)))
    invert = bool(data.get("invert", data.get("dataset") == "omniglot"))
    return ImagePreparation(int(data.get("image_size", 28)), channels, invert)


@dataclass(frozen=True)
class Prediction:
    """The answer for one query image (probabilities are fractions)."""

    image: str
    label: str
    probability: float
    runner_up: str
    runner_up_probability: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_channels(method: FewShotMethod, found: int, where: str, name: str) -> None:
    """Refuse images with another number of channels than ``method`` takes, saying the fix."""
    expected = method.hparams.get("in_channels")
    if expected is None or int(expected) == found:
        return
    raise DataError(
        f"The images in {where} are {_CHANNEL_WORDS.get(found, f'{found}-channel images')}, but "
        f"{name} takes {_CHANNEL_WORDS.get(int(expected), f'{expected}-channel images')}: "
        f"pass --channels {expected} (Python: channels={expected}) to convert them."
    )


@torch.no_grad()
def class_probabilities(
    method: FewShotMethod,
    support: FewShotDataset,
    query_images: Tensor,
    device: torch.device | str | None = None,
    batch_size: int = 256,
) -> Tensor:
    """``[num_queries, support.num_classes]`` class probabilities of each query image.

    One episode whose support set is all of ``support`` (any number of images per class) and
    whose queries are ``query_images`` (uint8 ``[num_queries, C, H, W]``), scored by the method in
    evaluation mode in batches of ``batch_size`` queries; a :class:`MetricMethod` embeds the
    support images once. Probabilities are the method's
    :meth:`~fslearn.methods.FewShotMethod.probabilities` of its scores: their softmax for most
    methods (for a method whose scores are not logits, such as ``pixel_nn``, only their order
    means something), the relation scores rescaled to sum to 1 for ``relationnet``.
    """
    n_way = support.num_classes
    if n_way < 2:
        raise DataError(f"{support.name} has {n_way} class; a prediction needs at least 2 "
                        f"classes to choose from (one subfolder per class).")
    if device is None:
        device = next(iter(method.parameters()), torch.empty(0)).device
    with evaluation_mode(method):
        support_x = to_float(support.images).to(device)
        embed = method.embeds_once
        if embed:
            support_x = method.embed(support_x)
        support_y = support.labels.to(device)[None]
        classes = torch.arange(n_way, device=device)[None]
        chunks = []
        for start in range(0, len(query_images), batch_size):
            query_x = to_float(query_images[start : start + batch_size]).to(device)
            if embed:
                query_x = method.embed(query_x)
            episode = Episode(
                support_x=support_x[None], support_y=support_y, query_x=query_x[None],
                # the queries' labels are what we are asking for; the episode needs a tensor
                query_y=torch.zeros(1, len(query_x), dtype=torch.long, device=device),
                classes=classes, n_way=n_way)
            chunks.append(method.probabilities(method(episode)[0].float()).cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, n_way)


def predict(
    checkpoint: str | os.PathLike[str] | FewShotMethod,
    support: str | os.PathLike[str] | FewShotDataset,
    query: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    image_size: int | None = None,
    channels: int | None = None,
    invert: bool | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> list[Prediction]:
    """Classify every query image among the support set's classes.

    Args:
        checkpoint: a checkpoint folder, a run folder, a shipped name (``"protonet-omniglot"``),
            or a method object.
        support: a folder with one subfolder of labelled images per class, or a dataset.
        query: an image file, a folder (searched recursively), or a list of them.
        image_size, channels, invert: override the checkpoint's image preparation (see
            :func:`image_preparation`). ``channels`` converts the images (1: greyscale,
            3: RGB); without it, images whose channels differ from the model's are refused.
        device: where to compute.
        batch_size: query images scored together.

    Returns:
        One :class:`Prediction` per query image, in the order of the files.

    Raises:
        DataError: a class folder without images, an unreadable image, a single class, or
            images that do not fit the model (the message says the fix).
    """
    if isinstance(checkpoint, FewShotMethod):
        method, record, name = checkpoint.to(device), None, checkpoint.name
    else:
        method, record = load_checkpoint(checkpoint, device)
        name = str(checkpoint)
    if method.episode_kind == "sequences":
        raise ValueError(f"{name} is a sequence model ({method.name}): it learns a class from "
                         f"labels given one step late, not from a support set, so it cannot "
                         f"classify with --support; evaluate it with fslearn evaluate.")
    prepared = image_preparation(method, record)
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (greyscale) or 3 (RGB), got {channels!r}")
    size = image_size or prepared.image_size
    flip = prepared.invert if invert is None else invert
    files = find_images(query)
    if isinstance(support, FewShotDataset):
        support_data = support
    else:
        grayscale = None if channels is None else channels == 1
        support_data = load_image_folder(support, size, grayscale, flip)
    where = support_data.name if isinstance(support, FewShotDataset) else str(support)
    check_channels(method, support_data.image_shape[0], where, name)
    query_grayscale = channels == 1 if channels is not None else (
        support_data.image_shape[0] == 1 if isinstance(support, FewShotDataset) else None)
    if query_grayscale is None:
        check_channels(method, image_channels(files), "the query images", name)
        query_grayscale = support_data.image_shape[0] == 1
    query_images = load_image_files(files, support_data.image_shape[1:], query_grayscale, flip)
    probabilities = class_probabilities(method, support_data, query_images, device, batch_size)
    names = list(support_data.class_names)
    ranked = probabilities.argsort(dim=1, descending=True)
    predictions = []
    for file, row, order in zip(files, probabilities, ranked, strict=True):
        best, second = int(order[0]), int(order[1])
        predictions.append(Prediction(
            image=str(file), label=names[best], probability=float(row[best]),
            runner_up=names[second], runner_up_probability=float(row[second])))
    return predictions


def format_predictions(predictions: Sequence[Prediction]) -> str:
    """A plain-text table, one row per query image."""
    header = ("image", "predicted", "probability", "runner-up", "probability")
    rows = [(p.image, p.label, f"{100 * p.probability:.1f}%", p.runner_up,
             f"{100 * p.runner_up_probability:.1f}%") for p in predictions]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(r, widths, strict=True))
                     .rstrip() for r in [header, *rows])
