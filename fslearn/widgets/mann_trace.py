"""Chapter 6 (memory-augmented networks): what a MANN did with its external memory during one
sequence episode, kept step by step for the pictures of :mod:`fslearn.widgets.memory`.

* :class:`EpisodeTrace`: the memory at every step, and the model's answers.
* :func:`memory_trace`: runs the model once on an episode and keeps all of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from fslearn._modes import evaluation_mode
from fslearn.data.sequences import SequenceEpisode
from fslearn.methods.mann import MANN, LSTMBaseline, correct_steps, least_used
from fslearn.widgets._explorer import _check_int

__all__ = ["EpisodeTrace", "memory_trace"]


@dataclass(frozen=True)
class EpisodeTrace:
    """What a :class:`~fslearn.methods.mann.MANN` did during one sequence episode: its memory
    at every step and its answers. Made by :func:`memory_trace`; all tensors are on the CPU.

    Tensors are indexed by the 0-based step ``t - 1``; the pictures number steps ``t = 1..time``.

    Attributes:
        read_weights: ``[time, heads, slots]`` ``w^r_t``, read after step ``t``'s write.
        write_weights: ``[time, heads, slots]`` ``w^w_t``.
        usage: ``[time, slots]`` ``w^u_t``, after step ``t``.
        write_gate: ``[time, heads]`` ``sigmoid(alpha_t)``: 1 = write where the head last read,
            0 = write to the least-used slots.
        least_used: ``[time, slots]`` bool, ``w^lu_{t-1}``: the ``heads`` least-used slots before
            step ``t``, which every head writes with weight ``1 - sigmoid(alpha_t)``.
        cleared: ``[time]`` the single least-used slot before step ``t``, zeroed before the write.
        logits: ``[time, num_outputs]``.
        probabilities: ``[time, n_way]`` the probability of each episode label (the softmax; for
            string labels, the product of the characters' probabilities of that label's string).
        predicted: ``[time]`` the predicted episode label (-1: a string that is none of the
            episode's).
        correct: ``[time]`` bool, :func:`~fslearn.methods.mann.correct_steps`.
        labels: ``[time]`` the true episode label of each step, ``0..n_way-1``.
        presentation: ``[time]`` how many times the step's class has been shown, this step
            included.
        images: ``[time, C, H, W]`` the image of each step, as the model saw it.
        n_way: classes in the episode.
        index: which episode of the batch this is.
        label_kind: ``"one_hot"`` or ``"string"``.
    """

    read_weights: Tensor
    write_weights: Tensor
    usage: Tensor
    write_gate: Tensor
    least_used: Tensor
    cleared: Tensor
    logits: Tensor
    probabilities: Tensor
    predicted: Tensor
    correct: Tensor
    labels: Tensor
    presentation: Tensor
    images: Tensor
    n_way: int
    index: int = 0
    label_kind: str = "one_hot"

    @property
    def time(self) -> int:
        return int(self.labels.shape[0])

    @property
    def heads(self) -> int:
        return int(self.write_weights.shape[1])

    @property
    def slots(self) -> int:
        return int(self.write_weights.shape[2])

    def previous_label(self, step: int) -> int | None:
        """The label fed in with step ``step`` (1-based): step ``step - 1``'s, None at step 1."""
        _check_int("step", step, 1, self.time)
        return None if step == 1 else int(self.labels[step - 2])


def _check_mann(model: object, episode: object, caller: str) -> None:
    """A MANN, a sequence episode, and episodes of the shape the model was built for."""
    if not isinstance(model, MANN):
        hint = (" (an LSTMBaseline has no external memory, only its hidden state)"
                if isinstance(model, LSTMBaseline) else "")
        raise TypeError(
            f"{caller} draws the external memory of a MANN (fslearn.methods.mann.MANN), got "
            f"{type(model).__name__}{hint}: pass a MANN, e.g. load_checkpoint(...)[0] of a "
            f"'mann' run")
    if not isinstance(episode, SequenceEpisode):
        raise TypeError(
            f"{caller} needs a SequenceEpisode, e.g. SequenceSampler(dataset).episode(0), got "
            f"{type(episode).__name__}")
    features, outputs = model.hparams["input_features"], model.hparams["num_outputs"]
    if episode.features != features or episode.num_outputs != outputs:
        raise ValueError(
            f"the episode has {episode.features} input features per step "
            f"({episode.image_features} image + {episode.label_features} label) and "
            f"{episode.num_outputs} outputs, but the model was built for {features} and "
            f"{outputs}: sample episodes of the shape it was trained on (n_way, image_size, "
            f"labels; SequenceTasks.model_shape gives the numbers) or pass the matching model")


def _image_shape(episode: SequenceEpisode) -> tuple[int, int, int]:
    """``(C, H, W)`` of the square images in ``episode.inputs`` (one or three channels)."""
    features = episode.image_features
    for channels in (1, 3):
        side = math.isqrt(features // channels)
        if features % channels == 0 and channels * side * side == features and side > 0:
            return channels, side, side
    raise ValueError(f"the episode's {features} image features per step are not a square image "
                     "of 1 or 3 channels, so the images cannot be drawn")


def _one_episode(episode: SequenceEpisode, index: int) -> SequenceEpisode:
    pick = slice(index, index + 1)
    return SequenceEpisode(
        inputs=episode.inputs[pick], targets=episode.targets[pick], labels=episode.labels[pick],
        presentation=episode.presentation[pick], classes=episode.classes[pick],
        indices=episode.indices[pick], strings=episode.strings[pick], n_way=episode.n_way,
        symbols=episode.symbols, label_kind=episode.label_kind)


def _label_probabilities(logits: Tensor, episode: SequenceEpisode) -> tuple[Tensor, Tensor]:
    """``logits [time, outputs]`` of one episode -> ``(probabilities [time, n_way], predicted
    [time])``; for strings, over the episode's ``n_way`` strings (-1: none of them)."""
    if episode.label_kind == "one_hot":
        return logits.softmax(1), logits.argmax(1)
    per_char = logits.unflatten(1, (episode.string_length, episode.symbols)).log_softmax(2)
    strings = episode.strings[0]  # [n_way, length]
    index = strings.T.unsqueeze(0).expand(logits.shape[0], -1, -1)  # [time, length, n_way]
    probabilities = per_char.gather(2, index).sum(1).exp()
    match = (per_char.argmax(2).unsqueeze(1) == strings.unsqueeze(0)).all(2)  # [time, n_way]
    predicted = torch.where(match.any(1), match.float().argmax(1), torch.full_like(
        match[:, 0], -1, dtype=torch.long))
    return probabilities, predicted


def memory_trace(model: MANN, episode: SequenceEpisode, index: int = 0) -> EpisodeTrace:
    """Run ``model`` on episode ``index`` of a batch of sequence episodes and keep what it did
    with its memory at every step (``model(episode, trace=True)``), with its answers.

    The model runs on the whole batch, as in training and evaluation, in evaluation mode under
    ``torch.no_grad`` and on its own device; its mode is restored afterwards.

    Args:
        model: a :class:`~fslearn.methods.mann.MANN`.
        episode: a :class:`~fslearn.data.sequences.SequenceEpisode` of the shape the model was
            built for.
        index: which episode of the batch.

    Returns:
        an :class:`EpisodeTrace`.

    Raises:
        TypeError: ``model`` is not a MANN (the LSTM baseline has no memory to draw), or
            ``episode`` is not a SequenceEpisode.
        ValueError: ``index`` outside the batch, or episodes of another shape than the model's.
    """
    _check_mann(model, episode, "memory_trace")
    _check_int("index", index, 0, episode.batch - 1)
    image_shape = _image_shape(episode)
    index = int(index)
    parameter = next(model.parameters())
    with evaluation_mode(model), torch.no_grad():
        # the whole batch, as training and evaluation run it: the least-used slots are an
        # argsort of the usage, which a last-bit difference of a batch of one can reorder
        logits, trace = model(episode.to(parameter.device), trace=True)
        initial_usage = model.initial_state(1, parameter).usage
    one = _one_episode(episode, index)
    logits = logits[index : index + 1].cpu()
    usage = trace.usage[index].cpu()
    before = torch.cat([initial_usage.cpu(), usage[:-1]])  # w^u_{t-1} for every step t
    probabilities, predicted = _label_probabilities(logits[0], one)
    return EpisodeTrace(
        read_weights=trace.read_weights[index].cpu(),
        write_weights=trace.write_weights[index].cpu(),
        usage=usage,
        write_gate=trace.write_gate[index].cpu(),
        least_used=least_used(before, model.heads).bool(),
        cleared=least_used(before, 1).argmax(1),
        logits=logits[0],
        probabilities=probabilities,
        predicted=predicted,
        correct=correct_steps(logits, one)[0],
        labels=one.labels[0].clone(),
        presentation=one.presentation[0].clone(),
        images=one.inputs[0, :, : one.image_features].reshape(-1, *image_shape).clone(),
        n_way=one.n_way,
        index=index,
        label_kind=one.label_kind,
    )


def _as_trace(model_or_trace: Any, episode: SequenceEpisode | None, index: int, caller: str
              ) -> EpisodeTrace:
    if isinstance(model_or_trace, EpisodeTrace):
        if episode is not None:
            raise ValueError(f"{caller} got an EpisodeTrace and an episode: the trace already "
                             "holds its episode; pass one or the other")
        return model_or_trace
    if episode is None:
        raise ValueError(f"{caller} needs the episode to run the model on: "
                         f"{caller}(model, episode, index)")
    return memory_trace(model_or_trace, episode, index)

