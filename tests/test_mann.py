"""The memory-augmented network and its sequence episodes: the LRUA equations by hand, the cosine
read, the one-step label offset, gradients through memory, and the sampler's invariants."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_dataset
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from fslearn.data.sequences import (
    SequenceEpisode,
    SequenceSampler,
    augment_images,
    offset_label_inputs,
    presentation_counts,
)
from fslearn.methods.mann import (
    MANN,
    LSTMBaseline,
    accuracy_by_presentation,
    cosine_read,
    least_used,
    lrua_write_weights,
    sequence_loss,
    update_usage,
    write_memory,
)


def tiny_mann(input_features: int = 6, num_outputs: int = 3, heads: int = 2) -> MANN:
    return MANN(input_features, num_outputs, controller_size=5, memory_slots=6, memory_width=3,
                read_heads=heads)


# --- LRUA by hand ---------------------------------------------------------------------------


def test_least_used_marks_the_n_smallest_and_breaks_ties_by_lowest_index():
    usage = torch.tensor([[0.5, 0.2, 0.9], [0.0, 0.0, 0.0], [3.0, 1.0, 1.0]])
    assert least_used(usage, 1).tolist() == [[0, 1, 0], [1, 0, 0], [0, 1, 0]]
    assert least_used(usage, 2).tolist() == [[1, 1, 0], [1, 1, 0], [0, 1, 1]]


def test_lrua_one_head_three_slots_by_hand():
    prev_usage = torch.tensor([[0.5, 0.2, 0.9]])
    prev_read = torch.tensor([[[0.7, 0.1, 0.2]]])
    gate = torch.tensor([[0.25]])  # sigmoid(alpha)
    memory = torch.tensor([[[1.0, 0.0], [2.0, 2.0], [0.0, 3.0]]])
    key = torch.tensor([[[1.0, -1.0]]])

    lu = least_used(prev_usage, 1)
    assert lu.tolist() == [[0.0, 1.0, 0.0]]  # slot 1 has the smallest usage, 0.2
    # 0.25 * [0.7, 0.1, 0.2] + 0.75 * [0, 1, 0]
    write = lrua_write_weights(gate, prev_read, lu)
    torch.testing.assert_close(write, torch.tensor([[[0.175, 0.775, 0.05]]]))
    # slot 1 is cleared before the write, so its old [2, 2] is gone: it holds 0.775 * k only
    new_memory = write_memory(memory, write, key, prev_usage)
    torch.testing.assert_close(new_memory, torch.tensor(
        [[[1.175, -0.175], [0.775, -0.775], [0.05, 2.95]]]))
    read = torch.tensor([[[0.2, 0.5, 0.3]]])
    # 0.95 * [0.5, 0.2, 0.9] + [0.2, 0.5, 0.3] + [0.175, 0.775, 0.05]
    torch.testing.assert_close(update_usage(prev_usage, read, write, 0.95),
                               torch.tensor([[0.85, 1.465, 1.205]]))


def test_lrua_two_heads_share_the_n_least_used_slots_and_sum_into_usage():
    prev_usage = torch.tensor([[0.5, 0.2, 0.9]])
    prev_read = torch.tensor([[[0.7, 0.1, 0.2], [0.0, 0.0, 1.0]]])
    gate = torch.tensor([[0.25, 0.5]])
    lu = least_used(prev_usage, 2)
    assert lu.tolist() == [[1.0, 1.0, 0.0]]
    write = lrua_write_weights(gate, prev_read, lu)
    torch.testing.assert_close(write, torch.tensor([[[0.925, 0.775, 0.05], [0.5, 0.5, 0.5]]]))
    memory = torch.ones(1, 3, 2)
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    # only the single least-used slot (1) is cleared, though both heads also write to slot 0
    torch.testing.assert_close(write_memory(memory, write, keys, prev_usage), torch.tensor(
        [[[1.925, 1.5], [0.775, 0.5], [1.05, 1.5]]]))
    read = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(update_usage(prev_usage, read, write, 0.5),
                               torch.tensor([[0.25 + 1 + 1.425, 0.1 + 1 + 1.275, 0.45 + 0.55]]))


def test_a_mann_step_writes_then_reads_as_the_equations_say():
    torch.manual_seed(0)
    model = tiny_mann()
    x = torch.randn(2, 6)
    state = model.initial_state(2, x)._replace(
        memory=torch.randn(2, 6, 3), usage=torch.rand(2, 6),
        read_weights=torch.softmax(torch.randn(2, 2, 6), 2), read_vectors=torch.randn(2, 2, 3))
    logits, new, write, gate = model.step(x, state)

    h, _ = model.controller(torch.cat([x, state.read_vectors.flatten(1)], 1), (state.h, state.c))
    keys = torch.tanh(model.key(h)).view(2, 2, 3)
    g = torch.sigmoid(model.alpha(h))
    w = g.unsqueeze(2) * state.read_weights + (1 - g.unsqueeze(2)) * least_used(
        state.usage, 2).unsqueeze(1)
    memory = state.memory.clone()
    memory[torch.arange(2), state.usage.argmin(1)] = 0.0
    memory = memory + torch.einsum("bhs,bhw->bsw", w, keys)
    r_weights = torch.softmax(F.cosine_similarity(keys.unsqueeze(2), memory.unsqueeze(1), dim=3,
                                                  eps=1e-12), 2)
    r = torch.einsum("bhs,bsw->bhw", r_weights, memory)
    torch.testing.assert_close(gate, g)
    torch.testing.assert_close(write, w)
    torch.testing.assert_close(new.memory, memory)
    torch.testing.assert_close(new.read_weights, r_weights)
    torch.testing.assert_close(new.read_vectors, r)
    torch.testing.assert_close(new.usage, 0.95 * state.usage + r_weights.sum(1) + w.sum(1))
    torch.testing.assert_close(logits, model.output(torch.cat([h, r.flatten(1)], 1)))


def test_initial_state_is_the_reproductions():
    state = tiny_mann().initial_state(3, torch.zeros(1))
    assert torch.all(state.memory == 1e-6)
    assert state.usage.tolist() == [[1.0, 0, 0, 0, 0, 0]] * 3
    assert state.read_weights[:, :, 0].eq(1).all() and state.read_weights.sum() == 6
    assert not state.read_vectors.any() and not state.h.any() and not state.c.any()


# --- cosine read ------------------------------------------------------------------------------


def test_cosine_read_matches_a_direct_computation():
    torch.manual_seed(1)
    memory, keys = torch.randn(2, 5, 4), torch.randn(2, 3, 4)
    memory[1, 2] = 0.0  # an empty slot: similarity 0, no NaN
    weights, vectors = cosine_read(memory, keys)
    for b in range(2):
        for h in range(3):
            sims = torch.tensor([
                0.0 if not memory[b, i].any() else
                float(keys[b, h] @ memory[b, i] / (keys[b, h].norm() * memory[b, i].norm()))
                for i in range(5)])
            expected = torch.exp(sims) / torch.exp(sims).sum()
            torch.testing.assert_close(weights[b, h], expected)
            torch.testing.assert_close(vectors[b, h], (expected[:, None] * memory[b]).sum(0))


def test_cosine_read_ignores_the_scale_of_keys_and_slots():
    torch.manual_seed(2)
    memory, keys = torch.randn(1, 4, 3), torch.randn(1, 2, 3)
    scaled = memory * torch.tensor([1.0, 10.0, 0.1, 3.0]).view(1, 4, 1)
    torch.testing.assert_close(cosine_read(scaled, 5 * keys)[0], cosine_read(memory, keys)[0])


# --- the label offset -------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", [MANN, LSTMBaseline])
def test_changing_the_label_of_step_t_changes_no_output_up_to_t(model_class):
    torch.manual_seed(3)
    model = model_class(input_features=4 + 3, num_outputs=3, controller_size=5)
    images, labels = torch.randn(2, 8, 4), torch.randint(0, 3, (2, 8))
    changed = labels.clone()
    t = 4
    changed[:, t] = (labels[:, t] + 1) % 3
    before = model(offset_label_inputs(images, F.one_hot(labels, 3).float()))
    after = model(offset_label_inputs(images, F.one_hot(changed, 3).float()))
    assert torch.equal(before[:, : t + 1], after[:, : t + 1])
    assert not torch.allclose(before[:, t + 1], after[:, t + 1])  # the next step does see it


def test_offset_label_inputs_shifts_by_exactly_one_step():
    images = torch.randn(1, 4, 2)
    codes = F.one_hot(torch.tensor([[2, 0, 1, 1]]), 3).float()
    inputs = offset_label_inputs(images, codes)
    assert torch.equal(inputs[..., :2], images)
    assert inputs[0, :, 2:].tolist() == [[0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]]


def test_sampled_inputs_carry_the_previous_label_and_never_the_current_one():
    dataset = make_dataset([6] * 7)
    episode = SequenceSampler(dataset, n_way=4, per_class=5, batch=3, seed=2, image_size=4
                              ).episode(0)
    label_part = episode.inputs[..., episode.image_features:]
    assert not label_part[:, 0].any()
    assert torch.equal(label_part[:, 1:], F.one_hot(episode.targets[:, :-1], 4).float())
    # where the label changes from one step to the next, the current one must not be marked
    changes = episode.targets[:, 1:] != episode.targets[:, :-1]
    current = label_part[:, 1:].gather(2, episode.targets[:, 1:, None]).squeeze(2)
    assert changes.any() and not current[changes].any()


# --- gradients through memory -----------------------------------------------------------------


def test_gradients_match_finite_differences_in_float64():
    torch.manual_seed(4)
    model = tiny_mann().double()
    inputs = torch.randn(2, 4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (inputs,), eps=1e-6, atol=1e-5)
    names = ["controller.weight_ih", "key.weight", "alpha.bias"]
    params = {name: p.detach().clone().requires_grad_() for name, p in model.named_parameters()
              if name in names}

    def logits(*chosen):
        return functional_call(model, dict(zip(names, chosen, strict=True)), (inputs.detach(),))

    assert torch.autograd.gradcheck(logits, tuple(params[n] for n in names), eps=1e-6, atol=1e-5)


def _without_controller_memory(lstm_params: dict[str, torch.Tensor]) -> None:
    """Make an LSTM forget everything between steps: no recurrent weights, forget gate shut
    (sigmoid(-1e4) is exactly 0 in float64), so h_t depends on the step's own input only."""
    with torch.no_grad():
        for name, p in lstm_params.items():
            if name.startswith("weight_hh"):
                p.zero_()
            if name.startswith("bias_ih"):
                hidden = p.shape[0] // 4
                p[hidden : 2 * hidden] = -1e4  # gate order: input, forget, cell, output


@pytest.mark.parametrize("model_class", [MANN, LSTMBaseline])
def test_the_first_input_reaches_the_last_output_only_through_memory(model_class):
    torch.manual_seed(5)
    kwargs = dict(input_features=6, num_outputs=3, controller_size=5)
    if model_class is MANN:
        kwargs.update(memory_slots=6, memory_width=3, read_heads=2)
    model = model_class(**kwargs).double()
    _without_controller_memory(dict(model.controller.named_parameters()))
    inputs = torch.randn(2, 6, 6, dtype=torch.float64, requires_grad=True)
    logits = model(inputs)
    (grad,) = torch.autograd.grad(logits[:, -1].sum(), inputs)
    # the current input always matters; the first one only if something carried it along
    assert grad[:, -1].abs().sum() > 0
    if model_class is MANN:
        assert grad[:, 0].abs().sum() > 1e-6, "no gradient through the read vectors and memory"
        params = dict(model.named_parameters())
        (key_grad,) = torch.autograd.grad(model(inputs.detach())[:, -1].sum(), params["key.weight"])
        assert key_grad.abs().sum() > 0
        # cut the read vectors out of the controller's input too: the memory (its contents, and
        # the read weights and usage that steer the next writes) is then the only way back
        with torch.no_grad():
            model.controller.weight_ih[:, 6:] = 0.0
        (grad,) = torch.autograd.grad(model(inputs)[:, -1].sum(), inputs)
        assert grad[:, 0].abs().sum() > 1e-6, "no gradient through the memory's contents"
    else:
        assert not grad[:, :-1].any(), "the surgery left the LSTM a path across steps"


# --- the sampler --------------------------------------------------------------------------------


@st.composite
def sequence_requests(draw):
    counts = draw(st.lists(st.integers(2, 9), min_size=2, max_size=9))
    n_way = draw(st.integers(1, len(counts)))
    per_class = draw(st.integers(1, min(counts)))
    batch = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32))
    index = draw(st.integers(0, 10**6))
    return counts, n_way, per_class, batch, seed, index


@settings(max_examples=60, deadline=None)
@given(sequence_requests())
def test_sequence_invariants(request_args):
    counts, n_way, per_class, batch, seed, index = request_args
    dataset = make_dataset(counts)
    sampler = SequenceSampler(dataset, n_way, per_class, batch, seed, image_size=4,
                              augment=False, normalize=False)
    episode = sampler.episode(index)
    time = n_way * per_class
    assert episode.inputs.shape == (batch, time, 16 + n_way)
    assert episode.targets.shape == episode.presentation.shape == (batch, time)
    assert (episode.n_way, episode.per_class, episode.num_outputs) == (n_way, per_class, n_way)
    for b in range(batch):
        labels, ids, classes = episode.labels[b], episode.indices[b], episode.classes[b]
        assert len(set(classes.tolist())) == n_way
        assert torch.equal(torch.bincount(labels, minlength=n_way),
                           torch.full((n_way,), per_class)), "each class exactly M times"
        assert torch.equal(dataset.labels[ids], classes[labels]), "label j is class classes[j]"
        assert len(set(ids.tolist())) == time, "a drawing repeats within an episode"
        for j in range(n_way):
            shown = (labels == j).long()
            assert torch.equal(episode.presentation[b][labels == j],
                               torch.cumsum(shown, 0)[labels == j])
    # the pixels are those of the listed drawings (make_dataset writes each index into them)
    pixels = (episode.inputs[..., :2] * 255).round().long()
    assert torch.equal(pixels[..., 0] + 256 * pixels[..., 1], episode.indices)


def test_same_seed_and_index_give_the_same_batch_and_others_differ():
    dataset = make_dataset([20] * 30, image_size=8)
    a = SequenceSampler(dataset, 5, 10, batch=2, seed=7, image_size=6)
    b = SequenceSampler(dataset, 5, 10, batch=2, seed=7, image_size=6)
    first = a.episode(12)
    assert torch.equal(first.inputs, b.episode(12).inputs)  # augmentation included
    assert torch.equal(first.indices, b.episode(12).indices)
    assert not torch.equal(first.indices, a.episode(13).indices)
    assert not torch.equal(first.indices, SequenceSampler(dataset, 5, 10, batch=2, seed=8,
                                                          image_size=6).episode(12).indices)
    assert not torch.equal(first.indices[0], first.indices[1]), "episodes of a batch repeat"
    assert torch.equal(next(iter(a)).inputs, a.episode(0).inputs)


def test_labels_are_reassigned_every_episode():
    dataset = make_dataset([4] * 5)
    episode = SequenceSampler(dataset, n_way=5, per_class=2, batch=64, seed=0, image_size=4
                              ).episode(0)
    # every episode uses all 5 classes; which label class 0 gets must vary between episodes
    label_of_class_0 = (episode.classes == 0).long().argmax(1)
    assert set(label_of_class_0.tolist()) == set(range(5))
    assert all(sorted(row.tolist()) == list(range(5)) for row in episode.classes)
    # and the drawings come in a shuffled order, not class after class
    assert all(row.diff().ne(0).sum() > 1 for row in episode.labels)
    assert set(episode.labels[:, 0].tolist()) == set(range(5))


def test_presentation_counts():
    labels = torch.tensor([[1, 0, 1, 1, 2, 0]])
    assert presentation_counts(labels, 3).tolist() == [[1, 1, 2, 3, 1, 2]]


def test_augmentation_moves_pixels_as_documented():
    torch.manual_seed(6)
    images = torch.rand(3, 1, 6, 6)
    zero = torch.zeros(3)
    torch.testing.assert_close(augment_images(images, zero, torch.zeros(3, 2)), images)
    torch.testing.assert_close(augment_images(images, torch.full((3,), 90.0), torch.zeros(3, 2)),
                               torch.rot90(images, 1, (-2, -1)), atol=1e-5, rtol=0)
    right_down = augment_images(images, zero, torch.tensor([[1.0, 2.0]] * 3))
    expected = torch.zeros_like(images)
    expected[..., 2:, 1:] = images[..., :-2, :-1]
    torch.testing.assert_close(right_down, expected, atol=1e-5, rtol=0)


def test_sampled_images_are_augmented_but_keep_shape_and_range(omniglot_val):
    common = dict(n_way=5, per_class=10, batch=4, seed=3)
    plain = SequenceSampler(omniglot_val, augment=False, **common).episode(0)
    augmented = SequenceSampler(omniglot_val, **common).episode(0)
    assert augmented.inputs.shape == plain.inputs.shape == (4, 50, 20 * 20 + 5)
    assert torch.equal(plain.indices, augmented.indices)  # the same drawings, moved
    images = augmented.inputs[..., :400]
    assert images.min() >= 0 and images.max() <= 1
    torch.testing.assert_close(images.amax(2), torch.ones(4, 50))  # normalised per image
    assert (images - plain.inputs[..., :400]).abs().mean() > 0.02
    # a 28x28 drawing downsampled keeps its ink in about the same place
    direct = F.interpolate(omniglot_val.images[plain.indices[0, :1]].float(), size=20,
                           mode="area").flatten()
    assert F.cosine_similarity(direct, plain.inputs[0, 0, :400], dim=0) > 0.99


def test_string_labels():
    dataset = make_dataset([5] * 20)
    sampler = SequenceSampler(dataset, n_way=15, per_class=3, batch=2, seed=1, labels="string",
                              image_size=4)
    episode = sampler.episode(0)
    assert episode.inputs.shape == (2, 45, 16 + 25)
    assert episode.targets.shape == (2, 45, 5)
    assert episode.strings.shape == (2, 15, 5)
    assert (episode.num_outputs, episode.label_features, episode.string_length) == (25, 25, 5)
    assert int(episode.targets.min()) >= 0 and int(episode.targets.max()) <= 4
    for b in range(2):
        assert len({tuple(s) for s in episode.strings[b].tolist()}) == 15, "strings repeat"
    assert not torch.equal(episode.strings[0], episode.strings[1])
    assert torch.equal(episode.targets, episode.strings.gather(
        1, episode.labels[..., None].expand(-1, -1, 5)))
    label_part = episode.inputs[..., 16:]
    assert not label_part[:, 0].any()
    assert torch.equal(label_part[:, 1:], F.one_hot(episode.targets[:, :-1], 5).flatten(2).float())


@pytest.mark.parametrize(("kwargs", "words"), [
    (dict(n_way=6), ["n_way=6", "only 5 classes"]),
    (dict(per_class=4), ["per_class=4", "only 3", "at most 3"]),
    (dict(n_way=0), ["n_way", "positive", "0"]),
    (dict(per_class=-2), ["per_class", "positive", "-2"]),
    (dict(batch=0), ["batch", "positive"]),
    (dict(seed=-1), ["seed", "-1"]),
    (dict(labels="words"), ["labels", "words"]),
    (dict(labels="string", n_way=5, string_length=1, symbols=4), ["n_way=5", "give only 4"]),
])
def test_bad_requests_say_what_is_wrong(kwargs, words):
    dataset = make_dataset([3, 4, 5, 6, 7])
    with pytest.raises(ValueError) as error:
        SequenceSampler(dataset, **{"n_way": 2, "per_class": 2, **kwargs})
    for word in words:
        assert word in str(error.value)


def test_to_moves_every_tensor():
    episode = SequenceSampler(make_dataset([3] * 4), 2, 2, image_size=4).episode(0)
    moved = episode.to("cpu")
    assert isinstance(moved, SequenceEpisode) and torch.equal(moved.inputs, episode.inputs)


# --- shapes, losses, scores ---------------------------------------------------------------------


@pytest.mark.parametrize("labels", ["one_hot", "string"])
def test_models_give_logits_of_the_episode_shape(labels):
    n_way = 5 if labels == "one_hot" else 15
    episode = SequenceSampler(make_dataset([4] * 16), n_way=n_way, per_class=2, batch=3,
                              labels=labels, image_size=4).episode(0)
    for model in (MANN(episode.features, episode.num_outputs, controller_size=8,
                       memory_slots=10, memory_width=4),
                  LSTMBaseline(episode.features, episode.num_outputs, controller_size=8)):
        loss, logits = model.loss(episode)
        assert logits.shape == (3, 2 * n_way, episode.num_outputs)
        assert loss.dim() == 0 and math.isfinite(loss.item())
        scores = accuracy_by_presentation(logits, episode, presentations=3)
        assert scores.shape == (3,) and torch.isnan(scores[2]) and not torch.isnan(scores[:2]).any()


def test_trace_holds_weights_that_follow_the_equations():
    torch.manual_seed(7)
    model = tiny_mann(heads=2)
    inputs = torch.randn(2, 5, 6)
    logits, trace = model(inputs, trace=True)
    assert torch.equal(logits, model(inputs))
    assert trace.read_weights.shape == trace.write_weights.shape == (2, 5, 2, 6)
    assert trace.usage.shape == (2, 5, 6) and trace.write_gate.shape == (2, 5, 2)
    assert trace.memory.shape == (2, 6, 3)
    torch.testing.assert_close(trace.read_weights.sum(3), torch.ones(2, 5, 2))
    # each head: sigmoid(alpha) * 1 (read weights sum to 1) + (1 - sigmoid(alpha)) * n marked slots
    gate = trace.write_gate
    torch.testing.assert_close(trace.write_weights.sum(3), gate + (1 - gate) * 2)


def test_string_loss_sums_the_characters_and_a_string_is_right_only_if_all_are():
    episode = SequenceSampler(make_dataset([4] * 4), n_way=3, per_class=2, batch=1,
                              labels="string", string_length=2, symbols=3, image_size=4,
                              ).episode(0)
    logits = torch.randn(1, 6, 6)
    per_char = logits.view(1, 6, 2, 3)
    expected = sum(F.cross_entropy(per_char[0, :, c], episode.targets[0, :, c]) for c in range(2))
    torch.testing.assert_close(sequence_loss(logits, episode), expected)
    # right on character 0 everywhere, wrong on character 1 everywhere: every string is wrong
    perfect = F.one_hot(episode.targets, 3).float() * 10
    half = perfect.clone()
    half[..., 1, :] = F.one_hot((episode.targets[..., 1] + 1) % 3, 3).float() * 10
    assert accuracy_by_presentation(perfect.flatten(2), episode, 2).tolist() == [1.0, 1.0]
    assert accuracy_by_presentation(half.flatten(2), episode, 2).tolist() == [0.0, 0.0]


def test_accuracy_by_presentation_by_hand():
    labels = torch.tensor([[0, 1, 0, 1]])
    episode = SequenceEpisode(
        inputs=torch.zeros(1, 4, 3), targets=labels, labels=labels,
        presentation=presentation_counts(labels, 2), classes=torch.tensor([[0, 1]]),
        indices=torch.arange(4)[None], strings=torch.zeros(1, 2, 0, dtype=torch.long),
        n_way=2, symbols=2)
    # predicted 0, 0, 0, 1: first presentations right 1 of 2, second presentations 2 of 2
    logits = F.one_hot(torch.tensor([[0, 0, 0, 1]]), 2).float()
    assert accuracy_by_presentation(logits, episode, 3)[:2].tolist() == [0.5, 1.0]
    assert torch.isnan(accuracy_by_presentation(logits, episode, 3)[2])
    torch.testing.assert_close(sequence_loss(logits, episode),
                               F.cross_entropy(logits[0], labels[0]))
