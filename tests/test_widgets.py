"""The book's widgets and their static figures, and the pixel-space nearest-neighbour baseline."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
from conftest import make_dataset

from fslearn.data import Episode, EpisodeSampler, SequenceSampler
from fslearn.data.sinusoid import SinusoidRegression
from fslearn.evaluation import evaluate
from fslearn.methods import METHODS, build_method
from fslearn.methods.maml import MAML, PretrainedBaseline
from fslearn.methods.mann import MANN, LSTMBaseline, correct_steps, least_used
from fslearn.methods.pixel_nn import PixelNearestNeighbour

pytest.importorskip("matplotlib")
pytest.importorskip("ipywidgets")

from fslearn import widgets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _collection(ax, gid: str):
    found = [c for c in ax.collections if c.get_gid() == gid]
    assert len(found) == 1, f"expected one scatter with gid {gid!r}"
    return found[0]


# --------------------------------------------------------------------------------------------
# Episodes


def test_plot_episode_from_sampler_has_support_and_query_axes():
    dataset = make_dataset([8] * 6, image_size=6)
    sampler = EpisodeSampler(dataset, n_way=3, k_shot=2, n_query=4, seed=1)
    figure = widgets.plot_episode(sampler, 5)
    support_ax, query_ax = figure.axes
    assert len(figure.axes) == 2
    # one image each, rows of 6 pixels + 2 of padding: 3 classes -> 3 * 8 + 2 pixels tall,
    # 2 shots / 4 queries wide
    assert support_ax.images[0].get_array().shape == (26, 18)
    assert query_ax.images[0].get_array().shape == (26, 34)
    # rows are labelled with the dataset's names of the episode's classes
    classes = sampler.indices(5).classes[0].tolist()
    labels = [tick.get_text() for tick in support_ax.get_yticklabels()]
    assert labels == [f"class{c}" for c in classes]
    assert "3-way 2-shot" in figure._suptitle.get_text()


def test_plot_episode_shows_the_episode_pixels():
    dataset = make_dataset([5] * 4, image_size=4)
    episode = EpisodeSampler(dataset, n_way=2, k_shot=1, n_query=1, seed=0).episode(0)
    figure = widgets.plot_episode(episode)
    grid = figure.axes[0].images[0].get_array()
    # the first support image sits after 2 pixels of padding; pixel [0, 0] encodes its index
    assert grid[2, 2] == pytest.approx(float(episode.support_x[0, 0, 0, 0, 0]))
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["class 1", "class 2"]


def test_plot_episode_rejects_bad_input():
    dataset = make_dataset([5] * 4, image_size=4)
    sampler = EpisodeSampler(dataset, n_way=2, k_shot=1, n_query=1)
    with pytest.raises(TypeError, match="Episode or an EpisodeSampler"):
        widgets.plot_episode(dataset)
    with pytest.raises(ValueError, match="index must be >= 0"):
        widgets.plot_episode(sampler, -1)
    with pytest.raises(ValueError, match=r"task must be in 0\.\.0"):
        widgets.plot_episode(sampler.episode(0), task=1)
    vectors = sampler.indices(0).gather(torch.zeros(len(dataset), 8))
    assert isinstance(vectors, Episode)
    with pytest.raises(ValueError, match="embeddings"):
        widgets.plot_episode(vectors)


def test_episode_explorer_redraws_when_a_slider_moves():
    dataset = make_dataset([12] * 10, image_size=8)
    explorer = widgets.episode_explorer(dataset, n_way=3, k_shot=1, n_query=2, max_way=10,
                                        max_shot=5, max_query=5)
    first = bytes(explorer.image.value)
    assert first.startswith(PNG_MAGIC)
    assert set(explorer.controls) == {"n_way", "k_shot", "n_query", "episode", "seed"}
    explorer.controls["n_way"].value = 7  # the observer redraws
    assert bytes(explorer.image.value) != first
    for name, value in [("k_shot", 4), ("n_query", 5), ("episode", 12), ("seed", 3)]:
        before = bytes(explorer.image.value)
        explorer.controls[name].value = value
        assert bytes(explorer.image.value) != before, name
    figure = explorer.update()
    assert len(figure.axes) == 2
    assert explorer.message.value == ""
    assert repr(explorer) == ("EpisodeExplorer(n_way=7, k_shot=4, n_query=5, episode=12, "
                              "seed=3)")


def test_episode_explorer_reports_settings_the_data_cannot_meet():
    dataset = make_dataset([6] * 10, image_size=4)
    explorer = widgets.episode_explorer(dataset, n_way=2, k_shot=1, n_query=1, max_way=10,
                                        max_shot=5, max_query=5)
    before = bytes(explorer.image.value)
    explorer.controls["k_shot"].value = 5
    explorer.controls["n_query"].value = 5  # 10 images per class needed, 6 available
    assert "k_shot + n_query" in explorer.message.value
    assert explorer.update() is None
    explorer.controls["n_query"].value = 1  # back to a valid setting: drawn again
    assert explorer.message.value == ""
    assert bytes(explorer.image.value) != before


def test_episode_explorer_rejects_bad_arguments():
    dataset = make_dataset([6] * 10, image_size=4)
    with pytest.raises(TypeError, match="FewShotDataset"):
        widgets.episode_explorer([1, 2, 3])
    with pytest.raises(ValueError, match=r"max_way must be in 2\.\.10"):
        widgets.episode_explorer(dataset, max_way=20)
    with pytest.raises(ValueError, match=r"n_way must be in 2\.\.10"):
        widgets.episode_explorer(dataset, n_way=11, max_way=10)
    with pytest.raises(ValueError, match="k_shot must be an integer"):
        widgets.episode_explorer(dataset, k_shot=1.5, max_way=10)
    with pytest.raises(ValueError, match="k_shot \\+ n_query"):
        widgets.episode_explorer(dataset, k_shot=5, n_query=5, max_way=10)


# --------------------------------------------------------------------------------------------
# Prototypes


def test_gaussian_classes_are_seeded():
    points, labels, means = widgets.gaussian_classes(3, per_class=50, seed=4)
    assert points.shape == (150, 2) and labels.shape == (150,) and means.shape == (3, 2)
    assert torch.bincount(labels).tolist() == [50, 50, 50]
    again, _, _ = widgets.gaussian_classes(3, per_class=50, seed=4)
    other, _, _ = widgets.gaussian_classes(3, per_class=50, seed=5)
    assert torch.equal(points, again)
    assert not torch.equal(points, other)


@pytest.mark.parametrize("k_shot", [1, 5])
def test_plot_prototypes_draws_support_prototypes_and_regions(k_shot):
    figure = widgets.plot_prototypes(k_shot, seed=2, n_way=3, resolution=40)
    (ax,) = figure.axes
    support = _collection(ax, "support").get_offsets()
    centres = _collection(ax, "prototypes").get_offsets()
    assert support.shape == (3 * k_shot, 2)
    assert centres.shape == (3, 2)
    assert _collection(ax, "means").get_offsets().shape == (3, 2)
    assert _collection(ax, "queries").get_offsets().shape == (3 * (150 - k_shot), 2)
    regions = ax.images[0].get_array()
    assert regions.shape[:2] == (40, 40)
    assert "accuracy" in ax.get_title()


def test_plot_prototypes_uses_the_class_means_of_the_support_points():
    # two classes, three points each, far apart: prototypes are the support means
    points = torch.tensor([[0.0, 0], [1, 1], [2, 0], [10, 1], [11, 0], [12, 1]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    figure = widgets.plot_prototypes(2, seed=0, points=points, labels=labels, resolution=21)
    (ax,) = figure.axes
    support = torch.as_tensor(_collection(ax, "support").get_offsets().data)
    centres = torch.as_tensor(_collection(ax, "prototypes").get_offsets().data)
    expected = torch.stack([support[:2].mean(0), support[2:].mean(0)])
    assert torch.allclose(centres.float(), expected.float())
    assert not [c for c in ax.collections if c.get_gid() == "means"]
    regions = ax.images[0].get_array()
    assert regions.shape[:2] == (21, 21)
    assert "100%" in ax.get_title()


def test_plot_prototypes_draws_into_given_axes():
    from matplotlib.figure import Figure

    figure = Figure()
    axes = figure.subplots(1, 2)
    assert widgets.plot_prototypes(1, ax=axes[1], resolution=10) is figure
    assert len(axes[1].collections) == 4 and not axes[0].collections


def test_plot_prototypes_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k_shot must be >= 1"):
        widgets.plot_prototypes(0)
    with pytest.raises(ValueError, match=r"n_way must be in 2\.\.10"):
        widgets.plot_prototypes(1, n_way=1)
    with pytest.raises(ValueError, match="both points and labels"):
        widgets.plot_prototypes(1, points=torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"points must be \[num_points, 2\]"):
        widgets.plot_prototypes(1, points=torch.zeros(4, 3), labels=torch.zeros(4))
    with pytest.raises(ValueError, match="no query point"):
        widgets.plot_prototypes(2, points=torch.zeros(4, 2), labels=torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match=r"0\.\.N-1"):
        widgets.plot_prototypes(1, points=torch.zeros(4, 2), labels=torch.tensor([0, 0, 2, 2]))


def test_prototype_explorer_redraws_when_a_slider_moves():
    explorer = widgets.prototype_explorer(k_shot=1, seed=0, n_way=3, max_shot=10, resolution=30)
    assert set(explorer.controls) == {"k_shot", "seed", "n_way"}
    for name, value in [("k_shot", 10), ("seed", 7), ("n_way", 5)]:
        before = bytes(explorer.image.value)
        explorer.controls[name].value = value
        assert bytes(explorer.image.value) != before, name
        assert explorer.message.value == ""
    figure = explorer.update()
    centres = _collection(figure.axes[0], "prototypes").get_offsets()
    assert centres.shape == (5, 2)
    assert repr(explorer) == "PrototypeExplorer(k_shot=10, seed=7, n_way=5)"


def test_prototype_explorer_on_own_points_has_no_way_slider():
    points, labels, _ = widgets.gaussian_classes(3, per_class=20, seed=1)
    explorer = widgets.prototype_explorer(points=points, labels=labels, max_shot=19,
                                          resolution=20)
    assert set(explorer.controls) == {"k_shot", "seed"}
    explorer.controls["k_shot"].value = 19
    assert explorer.message.value == ""


def test_prototype_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"k_shot must be in 1\.\.5"):
        widgets.prototype_explorer(k_shot=6, max_shot=5)
    with pytest.raises(ValueError, match=r"n_way must be in 2\.\.4"):
        widgets.prototype_explorer(n_way=5, max_way=4)
    with pytest.raises(ValueError, match=r"seed must be in 0\.\.3"):
        widgets.prototype_explorer(seed=4, max_seed=3)


# --------------------------------------------------------------------------------------------
# Sinusoid fits


def _sinusoid_models():
    torch.manual_seed(0)
    maml = MAML(n_way=1, inner_lr=0.05, hidden_channels=8, task="regression")
    pretrained = PretrainedBaseline(n_way=1, inner_lr=0.05, hidden_channels=8, task="regression")
    return {"MAML": maml, "pretrained": pretrained}


def test_sinusoid_fits_take_gradient_steps_on_the_support_points():
    model = _sinusoid_models()["MAML"]
    model.train()
    support_x, support_y = torch.tensor([-2.0, 0.5, 3.0]), torch.tensor([1.0, -0.5, 2.0])
    x = torch.linspace(-5, 5, 7)
    # 0 steps: the network itself
    with torch.no_grad():
        plain = model.network(x[:, None])[:, 0]
    assert torch.allclose(widgets.sinusoid_fits(model, support_x, support_y, x, 0), plain)
    # 1 step: one step of gradient descent on the support MSE, by hand
    copy = MAML(n_way=1, inner_lr=0.05, hidden_channels=8, task="regression")
    copy.load_state_dict(model.state_dict())
    loss = (copy.network(support_x[:, None])[:, 0] - support_y).pow(2).mean()
    loss.backward()
    with torch.no_grad():
        for parameter in copy.network.parameters():
            parameter -= 0.05 * parameter.grad
        by_hand = copy.network(x[:, None])[:, 0]
    fit = widgets.sinusoid_fits(model, support_x, support_y, x, 1)
    assert torch.allclose(fit, by_hand, atol=1e-6)
    assert not torch.allclose(fit, plain)
    # the model's mode and test steps are restored
    assert model.training and model.test_inner_steps == 1


def test_plot_sinusoid_fits_draws_a_grid_of_k_shots_by_models():
    models = _sinusoid_models()
    figure = widgets.plot_sinusoid_fits(models, k_shots=(5, 10), steps=(10, 0, 1), seed=3,
                                        index=7, resolution=50)
    assert len(figure.axes) == 4
    task = SinusoidRegression().sampler(10, 1, seed=3, split="test").episode(7)
    amplitude, phase = task.classes[0].tolist()
    for ax, (k_shot, label) in zip(figure.axes, [(5, "MAML"), (5, "pretrained"),
                                                 (10, "MAML"), (10, "pretrained")], strict=True):
        gids = [line.get_gid() for line in ax.lines]
        assert gids == ["truth", "steps=0", "steps=1", "steps=10"]
        truth = ax.lines[0]
        assert torch.allclose(torch.as_tensor(truth.get_ydata()),
                              amplitude * torch.sin(torch.as_tensor(truth.get_xdata()) - phase),
                              atol=1e-5)
        support = _collection(ax, "support").get_offsets()
        # the K-shot panel adapts on the first K support points of the task
        assert torch.allclose(torch.as_tensor(support.data).float(),
                              torch.stack([task.support_x[0, :k_shot, 0],
                                           task.support_y[0, :k_shot, 0]], dim=1))
        assert ax.get_title().startswith(f"{label}, $K={k_shot}$")
        assert "MSE after 0/1/10 steps" in ax.get_title()
    assert "Task 7 (seed 3)" in figure._suptitle.get_text()
    # one model and one K: a single panel
    single = widgets.plot_sinusoid_fits(models["MAML"], k_shots=3, steps=2, resolution=20)
    assert len(single.axes) == 1
    assert [line.get_gid() for line in single.axes[0].lines] == ["truth", "steps=2"]


def test_plot_sinusoid_fits_rejects_bad_input():
    models = _sinusoid_models()
    with pytest.raises(ValueError, match="non-empty mapping"):
        widgets.plot_sinusoid_fits({})
    with pytest.raises(ValueError, match="not a regression model"):
        widgets.plot_sinusoid_fits({"protonet": build_method("protonet", in_channels=1)})
    with pytest.raises(ValueError, match="not a regression model"):
        widgets.plot_sinusoid_fits(MAML(n_way=5, hidden_channels=4))  # classification
    with pytest.raises(ValueError, match="k_shots entry must be >= 1"):
        widgets.plot_sinusoid_fits(models, k_shots=(0, 5))
    with pytest.raises(ValueError, match="k_shots must be a non-empty sequence"):
        widgets.plot_sinusoid_fits(models, k_shots=())
    with pytest.raises(ValueError, match="steps entry must be >= 0"):
        widgets.plot_sinusoid_fits(models, steps=(-1, 1))
    with pytest.raises(ValueError, match="repeated"):
        widgets.plot_sinusoid_fits(models, steps=(1, 1))
    with pytest.raises(ValueError, match="index must be >= 0"):
        widgets.plot_sinusoid_fits(models, index=-1)
    with pytest.raises(TypeError, match="SinusoidRegression"):
        widgets.plot_sinusoid_fits(models, tasks="sinusoid")


def test_sinusoid_explorer_redraws_when_a_slider_moves():
    explorer = widgets.sinusoid_explorer(_sinusoid_models(), k_shot=5, steps=1, resolution=30,
                                         max_steps=5)
    assert set(explorer.controls) == {"index", "k_shot", "steps", "seed"}
    assert bytes(explorer.image.value).startswith(PNG_MAGIC)
    for name, value in [("index", 4), ("k_shot", 10), ("steps", 5), ("seed", 2)]:
        before = bytes(explorer.image.value)
        explorer.controls[name].value = value
        assert bytes(explorer.image.value) != before, name
        assert explorer.message.value == ""
    figure = explorer.update()
    assert len(figure.axes) == 2
    assert [line.get_gid() for line in figure.axes[0].lines] == ["truth", "steps=0", "steps=5"]
    assert _collection(figure.axes[1], "support").get_offsets().shape == (10, 2)
    explorer.controls["steps"].value = 0  # the initialisation only
    assert [line.get_gid() for line in explorer.update().axes[0].lines] == ["truth", "steps=0"]
    assert repr(explorer) == "SinusoidExplorer(index=4, k_shot=10, steps=0, seed=2)"


def test_sinusoid_explorer_rejects_bad_arguments():
    models = _sinusoid_models()
    with pytest.raises(ValueError, match=r"k_shot must be in 1\.\.5"):
        widgets.sinusoid_explorer(models, k_shot=6, max_shot=5)
    with pytest.raises(ValueError, match=r"steps must be in 0\.\.3"):
        widgets.sinusoid_explorer(models, steps=4, max_steps=3)
    with pytest.raises(ValueError, match=r"index must be in 0\.\.9"):
        widgets.sinusoid_explorer(models, index=10, max_index=9)
    with pytest.raises(ValueError, match="not a regression model"):
        widgets.sinusoid_explorer({"x": PixelNearestNeighbour()})


def test_missing_book_extras_give_an_install_hint(monkeypatch):
    widgets._explorer_class.cache_clear()
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # "import ipywidgets" now fails
    try:
        with pytest.raises(ImportError, match=r"needs ipywidgets.*pip install 'fslearn\[book\]'"):
            widgets.prototype_explorer(resolution=10)
    finally:
        widgets._explorer_class.cache_clear()
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"needs matplotlib.*pip install 'fslearn\[book\]'"):
        widgets.plot_prototypes(1)

# --------------------------------------------------------------------------------------------
# Pixel-space nearest neighbour


def test_pixel_nn_is_registered():
    assert METHODS["pixel_nn"] is PixelNearestNeighbour
    assert isinstance(build_method("pixel_nn", in_channels=1), PixelNearestNeighbour)


def test_pixel_nn_scores_by_hand():
    # 2-way 2-shot on 1x1x2 "images". Class 0: [0, 0] and [4, 0]; class 1: [1, 3] and [10, 10].
    support_x = torch.tensor([[0.0, 0], [4, 0], [1, 3], [10, 10]]).view(1, 4, 1, 1, 2)
    support_y = torch.tensor([[0, 0, 1, 1]])
    # query [3, 1]: distances 10, 2 (class 0) and 8, 130 (class 1) -> scores -2, -8
    # query [1, 2]: distances 5, 13 (class 0) and 1, 145 (class 1) -> scores -5, -1
    query_x = torch.tensor([[3.0, 1], [1, 2]]).view(1, 2, 1, 1, 2)
    episode = Episode(support_x, support_y, query_x, torch.tensor([[0, 1]]),
                      torch.tensor([[0, 1]]), n_way=2)
    scores = PixelNearestNeighbour()(episode)
    assert torch.allclose(scores, torch.tensor([[[-2.0, -8.0], [-5.0, -1.0]]]))
    # nearest neighbour, not nearest prototype: the mean of class 1, [5.5, 6.5], is far from
    # [3, 1] (36.5) while the mean of class 0, [2, 0], is at 2; both rules agree here, but for
    # [1, 2] the class-0 mean is at 5 and the class-1 mean at 40.5: nearest prototype says 0,
    # nearest neighbour says 1
    assert scores[0, 1].argmax() == 1


def test_pixel_nn_on_identical_copies_is_perfect():
    dataset = make_dataset([6] * 8, image_size=4)
    # every image of a class identical: copy the first image of each class over the others
    images = dataset.images.clone()
    for c in range(8):
        members = (dataset.labels == c).nonzero().flatten()
        images[members] = images[members[0]].clone()
    same = type(dataset)(images, dataset.labels, dataset.class_names, "copies")
    result = evaluate(PixelNearestNeighbour(), same, n_way=5, k_shot=1, n_query=3, episodes=10)
    assert result.accuracy == 1.0


# --------------------------------------------------------------------------------------------
# The memory of a memory-augmented network


def _axes(figure, gid: str):
    found = [ax for ax in figure.axes if ax.get_gid() == gid]
    assert len(found) == 1, f"expected one axes with gid {gid!r}"
    return found[0]


@pytest.fixture(scope="module")
def mann_and_episodes(omniglot_val):
    """The paper's MANN (untrained) and a batch of three real 5-way sequence episodes."""
    torch.manual_seed(0)
    model = MANN()
    sampler = SequenceSampler(omniglot_val, n_way=5, per_class=10, batch=3, seed=4)
    return model, sampler, sampler.episode(0)


def test_memory_trace_is_the_models_trace_of_one_episode(mann_and_episodes):
    model, _, episode = mann_and_episodes
    model.train()
    trace = widgets.memory_trace(model, episode, 2)
    assert model.training  # the mode is restored
    with torch.no_grad():
        logits, full = model(episode, trace=True)
    assert trace.time == 50 and trace.heads == 4 and trace.slots == 128 and trace.index == 2
    for name in ("read_weights", "write_weights", "usage", "write_gate"):
        torch.testing.assert_close(getattr(trace, name), getattr(full, name)[2])
    torch.testing.assert_close(trace.logits, logits[2])
    assert torch.equal(trace.correct, correct_steps(logits, episode)[2])
    assert torch.equal(trace.labels, episode.labels[2])
    assert torch.equal(trace.presentation, episode.presentation[2])
    assert torch.equal(trace.images, episode.inputs[2, :, :400].reshape(50, 1, 20, 20))
    torch.testing.assert_close(trace.probabilities, logits[2].softmax(1))
    assert torch.equal(trace.predicted, logits[2].argmax(1))
    # before step 1 the usage is one-hot at slot 0: the 4 least-used slots are 1..4, 1 cleared
    assert trace.least_used[0].nonzero().flatten().tolist() == [1, 2, 3, 4]
    assert int(trace.cleared[0]) == 1
    for t in (1, 20, 49):
        assert torch.equal(trace.least_used[t], least_used(trace.usage[t - 1 : t], 4)[0].bool())
        assert int(trace.cleared[t]) == int(trace.usage[t - 1].argmin())
        # and they are where LRUA wrote: w^w_t = g w^r_{t-1} + (1 - g) w^lu_{t-1}
        gate = trace.write_gate[t].unsqueeze(1)
        torch.testing.assert_close(trace.write_weights[t], gate * trace.read_weights[t - 1]
                                   + (1 - gate) * trace.least_used[t].float())
    assert trace.previous_label(1) is None
    assert trace.previous_label(2) == int(episode.labels[2, 0])


def test_memory_trace_of_string_labels_scores_the_episode_strings():
    episode = SequenceSampler(make_dataset([4] * 16), n_way=15, per_class=2, batch=2,
                              labels="string", image_size=4).episode(0)
    torch.manual_seed(1)
    model = MANN(episode.features, episode.num_outputs, controller_size=8, memory_slots=10,
                 memory_width=4, read_heads=2)
    trace = widgets.memory_trace(model, episode, 1)
    per_char = trace.logits.unflatten(1, (5, 5)).softmax(2)  # [time, 5 characters, 5 symbols]
    strings = episode.strings[1]  # [15, 5]
    for t in (0, 17):
        for n in (0, 9):
            expected = per_char[t, torch.arange(5), strings[n]].prod()
            torch.testing.assert_close(trace.probabilities[t, n], expected)
    assert trace.probabilities.shape == (30, 15) and trace.images.shape == (30, 1, 4, 4)
    assert torch.equal(trace.predicted[trace.correct], trace.labels[trace.correct])
    assert ((trace.predicted >= -1) & (trace.predicted < 15)).all()


def test_plot_memory_heat_maps_and_strip_are_the_trace(mann_and_episodes):
    model, _, episode = mann_and_episodes
    trace = widgets.memory_trace(model, episode, 1)
    figure = widgets.plot_memory(trace, slots=[7, 0, 30])
    gids = [ax.get_gid() for ax in figure.axes if ax.get_gid()]
    assert gids == ["labels", "gate", "write", "read", "usage"]
    assert len(figure.axes) == 8  # and one colour bar per heat map
    expected = {"write": trace.write_weights.sum(1), "read": trace.read_weights.sum(1),
                "usage": trace.usage}
    for gid, values in expected.items():
        ax = _axes(figure, gid)
        shown = torch.as_tensor(ax.images[0].get_array().data)
        assert shown.shape == (3, 50)
        torch.testing.assert_close(shown, values[:, [7, 0, 30]].T)
        assert [tick.get_text() for tick in ax.get_yticklabels()] == ["7", "0", "30"]
    assert "summed over the heads" in _axes(figure, "write").get_title()
    gate = _axes(figure, "gate")
    assert [line.get_gid() for line in gate.lines] == [f"head {h}" for h in (1, 2, 3, 4)]
    torch.testing.assert_close(torch.as_tensor(gate.lines[2].get_ydata()),
                               trace.write_gate[:, 2])
    strip = _axes(figure, "labels")
    steps = torch.arange(1, 51, dtype=torch.float64)
    right = torch.as_tensor(_collection(strip, "right").get_offsets().data)[:, 0]
    wrong = torch.as_tensor(_collection(strip, "wrong").get_offsets().data)[:, 0]
    assert torch.equal(right, steps[trace.correct])
    assert torch.equal(wrong, steps[~trace.correct])
    assert _collection(strip, "labels").get_offsets().shape == (50, 2)
    assert f"{100 * trace.correct.float().mean():.0f}% right" in strip.get_title()
    # from the model and the episode: the same picture
    again = widgets.plot_memory(model, episode, 1, slots=[7, 0, 30])
    assert (_axes(again, "write").images[0].get_array()
            == _axes(figure, "write").images[0].get_array()).all()


def test_plot_memory_draws_by_default_the_slots_written(mann_and_episodes):
    model, _, episode = mann_and_episodes
    trace = widgets.memory_trace(model, episode, 0)
    writes = torch.zeros_like(trace.write_weights)
    writes[3, 1, 9] = 0.7
    writes[10, 0, 2] = 0.05
    writes[10, 2, 2] = 0.06  # 0.11 summed over the heads: noticeable
    writes[20, 3, 50] = 0.09  # below the threshold
    sparse = dataclasses.replace(trace, write_weights=writes)
    figure = widgets.plot_memory(sparse)
    assert _axes(figure, "write").images[0].get_array().shape == (2, 50)
    assert [t.get_text() for t in _axes(figure, "usage").get_yticklabels()] == ["2", "9"]
    assert "the 2 slots written with weight ≥ 0.1, of 128" in figure._suptitle.get_text()
    # too many slots written (an untrained model writes them all): the busiest max_slots
    figure = widgets.plot_memory(trace, max_slots=20)
    assert _axes(figure, "read").images[0].get_array().shape == (20, 50)
    busy = trace.write_weights.sum((0, 1)) + trace.read_weights.sum((0, 1))
    assert _axes(figure, "write").get_yticklabels()[0].get_text() == str(
        min(busy.topk(20).indices.tolist()))


def test_plot_memory_step_shows_one_step(mann_and_episodes):
    model, _, episode = mann_and_episodes
    trace = widgets.memory_trace(model, episode, 0)
    slots = list(range(0, 128, 2))
    figure = widgets.plot_memory_step(trace, 12, slots=slots)
    assert {ax.get_gid() for ax in figure.axes} == {"image", "probabilities", "write", "read",
                                                    "usage"}
    image = _axes(figure, "image")
    assert torch.equal(torch.as_tensor(image.images[0].get_array().data), trace.images[11, 0])
    assert f"label fed in: {int(trace.labels[10])}" in image.get_xlabel()
    heights = [bar.get_height() for bar in _axes(figure, "probabilities").patches]
    torch.testing.assert_close(torch.tensor(heights).float(), trace.probabilities[11])
    for gid, values in [("write", trace.write_weights.sum(1)), ("read", trace.read_weights.sum(1)),
                        ("usage", trace.usage)]:
        heights = [bar.get_height() for bar in _axes(figure, gid).patches]
        torch.testing.assert_close(torch.tensor(heights).float(), values[11, slots])
    marks = _collection(_axes(figure, "write"), "least_used").get_offsets()[:, 0]
    expected = [slots.index(s) for s in trace.least_used[11].nonzero().flatten().tolist()
                if s in slots]
    assert sorted(marks.tolist()) == expected
    first = widgets.plot_memory_step(trace, 1)
    assert "label fed in: none" in _axes(first, "image").get_xlabel()
    # by default every slot written with noticeable weight: an untrained MANN writes them all
    assert len(_axes(first, "usage").patches) == 128


def test_memory_explorer_steps_through_an_episode(mann_and_episodes):
    model, sampler, episode = mann_and_episodes
    explorer = widgets.memory_explorer(model, episode, step=1, index=0)
    assert set(explorer.controls) == {"step", "index"}
    assert explorer.controls["step"].max == 50 and explorer.controls["index"].max == 2
    first = bytes(explorer.image.value)
    assert first.startswith(PNG_MAGIC)
    explorer.controls["step"].value = 30  # the observer redraws
    assert bytes(explorer.image.value) != first
    figure = explorer.update()
    trace = widgets.memory_trace(model, episode, 0)
    assert torch.equal(torch.as_tensor(_axes(figure, "image").images[0].get_array().data),
                       trace.images[29, 0])
    before = bytes(explorer.image.value)
    explorer.controls["index"].value = 2
    assert bytes(explorer.image.value) != before
    assert explorer.message.value == ""
    assert repr(explorer) == "MemoryExplorer(step=30, index=2)"
    # from a sampler: episode k is episode k % batch of batch k // batch, and a seed box
    explorer = widgets.memory_explorer(model, sampler, step=5, index=4, max_index=9)
    assert set(explorer.controls) == {"step", "index", "seed"}
    figure = explorer.update()
    trace = widgets.memory_trace(model, sampler.episode(1), 1)
    torch.testing.assert_close(
        torch.tensor([bar.get_height() for bar in _axes(figure, "probabilities").patches]).float(),
        trace.probabilities[4])
    before = bytes(explorer.image.value)
    explorer.controls["seed"].value = 5
    assert bytes(explorer.image.value) != before
    assert repr(explorer) == "MemoryExplorer(step=5, index=4, seed=5)"


def test_memory_pictures_reject_bad_arguments(mann_and_episodes):
    model, sampler, episode = mann_and_episodes
    trace = widgets.memory_trace(model, episode, 0)
    with pytest.raises(TypeError, match="LSTMBaseline has no external memory"):
        widgets.memory_trace(LSTMBaseline(), episode)
    for source in (episode, sampler):
        with pytest.raises(TypeError, match="memory_explorer draws the external memory of a MANN"):
            widgets.memory_explorer(LSTMBaseline(), source)
    with pytest.raises(TypeError, match="needs a SequenceEpisode"):
        widgets.plot_memory(model, episode.inputs)
    small = SequenceSampler(make_dataset([4] * 8), n_way=4, per_class=2, image_size=10
                            ).episode(0)
    with pytest.raises(ValueError, match=r"104 input features.*built for 405"):
        widgets.memory_trace(model, small)
    with pytest.raises(ValueError, match=r"index must be in 0\.\.2, got 3"):
        widgets.memory_trace(model, episode, 3)
    with pytest.raises(ValueError, match=r"step must be in 1\.\.50, got 51"):
        widgets.plot_memory_step(trace, 51)
    with pytest.raises(ValueError, match=r"step must be in 1\.\.50, got 0"):
        widgets.plot_memory_step(trace, 0)
    with pytest.raises(TypeError, match="make one with memory_trace"):
        widgets.plot_memory_step(model, 1)
    with pytest.raises(ValueError, match="needs the episode"):
        widgets.plot_memory(model)
    with pytest.raises(ValueError, match="pass one or the other"):
        widgets.plot_memory(trace, episode)
    with pytest.raises(ValueError, match=r"slots entry must be in 0\.\.127"):
        widgets.plot_memory(trace, slots=[0, 128])
    with pytest.raises(ValueError, match="repeated"):
        widgets.plot_memory(trace, slots=[1, 1])
    with pytest.raises(ValueError, match=r"step must be in 1\.\.50"):
        widgets.memory_explorer(model, episode, step=51)
    with pytest.raises(ValueError, match=r"index must be in 0\.\.9"):
        widgets.memory_explorer(model, sampler, index=10, max_index=9)
    with pytest.raises(ValueError, match="seed is for a SequenceSampler"):
        widgets.memory_explorer(model, episode, seed=1)
    with pytest.raises(TypeError, match="SequenceEpisode or a SequenceSampler"):
        widgets.memory_explorer(model, [episode])


# --------------------------------------------------------------------------------------------
# Matching Networks' attention


@pytest.fixture(scope="module")
def matching_and_episodes():
    """An untrained Matching Network (with and without FCE) and 4-way 2-shot episodes of
    28x28 images (synthetic: the pixels are random, so embeddings differ)."""
    torch.manual_seed(0)
    dataset = make_dataset([6] * 8, image_size=28)
    dataset = dataclasses.replace(
        dataset, images=torch.randint(0, 256, dataset.images.shape, dtype=torch.uint8))
    sampler = EpisodeSampler(dataset, n_way=4, k_shot=2, n_query=3, tasks=2, seed=1)
    plain = METHODS["matchingnet"]()
    fce = METHODS["matchingnet"](fce=True)
    return plain, fce, sampler


@pytest.mark.parametrize("kind", ["plain", "fce", "scaled"])
def test_matching_attention_is_the_models_attention(matching_and_episodes, kind):
    plain, fce, sampler = matching_and_episodes
    model = {"plain": plain, "fce": fce}.get(kind)
    if model is None:  # the same network with a scaled attention
        model = METHODS["matchingnet"](scale=10.0)
        model.load_state_dict(plain.state_dict())
    episode = sampler.episode(0)
    model.train()
    attention = widgets.matching_attention(model, episode, task=1)
    assert model.training  # the mode is restored
    assert attention.shape == (12, 8)
    torch.testing.assert_close(attention.sum(1), torch.ones(12))
    model.eval()
    with torch.no_grad():
        log_y_hat = model(episode)[1]
    model.train()
    # summed over each class's support images, the attention is the model's prediction y_hat
    one_hot = torch.nn.functional.one_hot(episode.support_y[1], 4).float()
    torch.testing.assert_close(attention @ one_hot, log_y_hat.exp())


def _containers(ax):
    return {container.get_label(): [bar.get_height() for bar in container]
            for container in ax.containers}


def test_plot_matching_attention_draws_the_attention_and_the_probabilities(
        matching_and_episodes):
    plain, _, sampler = matching_and_episodes
    episode = sampler.episode(0)
    others = {"ProtoNet": METHODS["protonet"](), "Siamese": METHODS["siamese"]()}
    figure = widgets.plot_matching_attention(plain, episode, 5, task=1, others=others)
    assert {ax.get_gid() for ax in figure.axes} == {"query", "support", "attention", "classes"}
    attention = widgets.matching_attention(plain, episode, task=1)[5]
    bars = [bar.get_height() for bar in _axes(figure, "attention").patches]
    torch.testing.assert_close(torch.tensor(bars).float(), attention)
    frames = [p for p in _axes(figure, "support").patches if p.get_gid() == "frame"]
    assert len(frames) == 8
    widths = torch.tensor([frame.get_linewidth() for frame in frames])
    assert int(widths.argmax()) == int(attention.argmax())  # the most attended stands out
    shown = torch.as_tensor(_axes(figure, "support").images[2].get_array().data)
    assert torch.equal(shown, episode.support_x[1, 2, 0])
    heights = _containers(_axes(figure, "classes"))
    assert list(heights) == ["Matching Network", "ProtoNet", "Siamese"]
    plain.eval()
    with torch.no_grad():
        y_hat = plain(episode)[1, 5].exp()
    torch.testing.assert_close(torch.tensor(heights["Matching Network"]).float(), y_hat)
    expected = widgets.method_probabilities(others, episode, task=1)
    for name in others:
        torch.testing.assert_close(torch.tensor(heights[name]).float(), expected[name][5])
    query = torch.as_tensor(_axes(figure, "query").images[0].get_array().data)
    assert torch.equal(query, episode.query_x[1, 5, 0])
    assert "4-way 2-shot episode, query 5 of 12" in figure._suptitle.get_text()


def test_attention_explorer_redraws_when_a_slider_moves(matching_and_episodes):
    plain, _, sampler = matching_and_episodes
    explorer = widgets.attention_explorer(plain, sampler, query=2, index=0, max_index=9)
    assert set(explorer.controls) == {"query", "index", "seed"}
    assert explorer.controls["query"].max == 11
    first = bytes(explorer.image.value)
    assert first.startswith(PNG_MAGIC)
    for name, value in [("query", 7), ("index", 3), ("seed", 4)]:
        before = bytes(explorer.image.value)
        explorer.controls[name].value = value  # the observer redraws
        assert bytes(explorer.image.value) != before, name
    figure = explorer.update()
    other = EpisodeSampler(sampler.dataset, 4, 2, 3, tasks=2, seed=4).episode(3)
    torch.testing.assert_close(
        torch.tensor([bar.get_height() for bar in _axes(figure, "attention").patches]).float(),
        widgets.matching_attention(plain, other, task=0)[7])
    assert explorer.message.value == ""
    assert repr(explorer) == "AttentionExplorer(query=7, index=3, seed=4)"
    # over the tasks of a fixed batch: no seed box
    batch = sampler.episode(0)
    explorer = widgets.attention_explorer(plain, batch, query=1, index=1)
    assert set(explorer.controls) == {"query", "index"} and explorer.controls["index"].max == 1
    figure = explorer.update()
    torch.testing.assert_close(
        torch.tensor([bar.get_height() for bar in _axes(figure, "attention").patches]).float(),
        widgets.matching_attention(plain, batch, task=1)[1])


def test_attention_pictures_reject_bad_input(matching_and_episodes):
    plain, _, sampler = matching_and_episodes
    episode = sampler.episode(0)
    with pytest.raises(TypeError, match="needs a MatchingNetwork, got PrototypicalNetwork"):
        widgets.matching_attention(METHODS["protonet"](), episode)
    with pytest.raises(TypeError, match="needs a MatchingNetwork"):
        widgets.attention_explorer(METHODS["protonet"](), sampler)
    with pytest.raises(TypeError, match="needs an Episode of images"):
        widgets.plot_matching_attention(plain, sampler)
    vectors = sampler.indices(0).gather(torch.zeros(len(sampler.dataset), 64))
    with pytest.raises(ValueError, match="embeddings"):
        widgets.matching_attention(plain, vectors)
    with pytest.raises(ValueError, match=r"query must be in 0\.\.11, got 12"):
        widgets.plot_matching_attention(plain, episode, 12)
    with pytest.raises(ValueError, match=r"task must be in 0\.\.1, got 2"):
        widgets.plot_matching_attention(plain, episode, 0, task=2)
    with pytest.raises(TypeError, match="non-empty mapping"):
        widgets.method_probabilities({}, episode)
    with pytest.raises(TypeError, match=r"methods\['x'\] is a str"):
        widgets.method_probabilities({"x": "protonet"}, episode)
    with pytest.raises(ValueError, match=r"query must be in 0\.\.11"):
        widgets.attention_explorer(plain, sampler, query=12)
    with pytest.raises(ValueError, match=r"index must be in 0\.\.9"):
        widgets.attention_explorer(plain, sampler, index=10, max_index=9)
    with pytest.raises(ValueError, match="seed is for an EpisodeSampler"):
        widgets.attention_explorer(plain, episode, seed=1)
    with pytest.raises(TypeError, match="an Episode or an EpisodeSampler"):
        widgets.attention_explorer(plain, [episode])


# --------------------------------------------------------------------------------------------
# Attributions of a metric method's decision (section 7.6)


@pytest.fixture(scope="module")
def protonet_and_episodes():
    """An untrained Prototypical Network and 4-way 2-shot episodes of random 28x28 images."""
    pytest.importorskip("captum")
    torch.manual_seed(0)
    dataset = make_dataset([6] * 8, image_size=28)
    dataset = dataclasses.replace(
        dataset, images=torch.randint(0, 256, dataset.images.shape, dtype=torch.uint8))
    sampler = EpisodeSampler(dataset, n_way=4, k_shot=2, n_query=3, tasks=2, seed=1)
    return METHODS["protonet"](), sampler


def test_plot_attributions_draws_the_decision_and_captums_maps(protonet_and_episodes):
    from fslearn.interpret import query_attributions, support_attributions

    model, sampler = protonet_and_episodes
    episode = sampler.episode(0)
    model.train()
    figure = widgets.plot_attributions(model, episode, 5, task=1, how="occlusion")
    assert model.training  # the mode is restored
    assert {ax.get_gid() for ax in figure.axes} == {
        "query", "query_map", "support_image", "support_map", "support", "scores"}
    model.eval()
    with torch.no_grad():
        support_z = model.embed(episode.support_x[1])
        query_z = model.embed(episode.query_x[1, 5][None])
    centres = torch.stack([support_z[episode.support_y[1] == n].mean(0) for n in range(4)])
    distances = ((query_z - centres) ** 2).sum(-1)
    bars = torch.tensor([bar.get_height() for bar in _axes(figure, "scores").patches]).float()
    torch.testing.assert_close(bars, distances, rtol=1e-4, atol=1e-4)
    predicted = int(distances.argmin())
    # the maps are Captum's attributions of the chosen class's score, summed over channels
    expected = query_attributions(model, episode, 5, task=1, target=predicted, how="occlusion")
    shown = torch.as_tensor(_axes(figure, "query_map").images[0].get_array().data)
    torch.testing.assert_close(shown.float(), expected.map.sum(0))
    chosen = int((episode.support_y[1] == predicted).nonzero()[0, 0])
    expected = support_attributions(model, episode, chosen, 5, task=1, target=predicted,
                                    how="occlusion")
    shown = torch.as_tensor(_axes(figure, "support_map").images[0].get_array().data)
    torch.testing.assert_close(shown.float(), expected.map.sum(0))
    shown = torch.as_tensor(_axes(figure, "query").images[0].get_array().data)
    assert torch.equal(shown, episode.query_x[1, 5, 0])
    frames = [p for p in _axes(figure, "support").patches if p.get_gid() == "frame"]
    assert len(frames) == 8
    assert int(torch.tensor([f.get_linewidth() for f in frames]).argmax()) == chosen


def test_attribution_explorer_redraws_when_a_control_changes(protonet_and_episodes):
    model, sampler = protonet_and_episodes
    explorer = widgets.attribution_explorer(model, sampler, query=2, index=0, max_index=9)
    assert set(explorer.controls) == {"query", "index", "how", "seed"}
    first = explorer.image.value
    explorer.controls["how"].value = "occlusion"
    assert explorer.image.value != first and not explorer.message.value
    explorer.controls["index"].value = 3
    figure = explorer.update()
    other = sampler.episode(3)
    shown = torch.as_tensor(_axes(figure, "query").images[0].get_array().data)
    assert torch.equal(shown, other.query_x[0, 2, 0])
    batch = sampler.episode(0)
    explorer = widgets.attribution_explorer(model, batch, query=1, index=1)
    assert set(explorer.controls) == {"query", "index", "how"}
    shown = torch.as_tensor(_axes(explorer.update(), "query").images[0].get_array().data)
    assert torch.equal(shown, batch.query_x[1, 1, 0])


def test_attribution_pictures_reject_bad_input(protonet_and_episodes):
    model, sampler = protonet_and_episodes
    episode = sampler.episode(0)
    with pytest.raises(TypeError, match="needs a metric method"):
        widgets.plot_attributions(METHODS["maml"](), episode)
    with pytest.raises(TypeError, match="needs an Episode of images"):
        widgets.plot_attributions(model, sampler)
    with pytest.raises(ValueError, match="how must be one of"):
        widgets.plot_attributions(model, episode, how="saliency")
    with pytest.raises(ValueError, match=r"query must be in 0\.\.11, got 12"):
        widgets.plot_attributions(model, episode, 12)
    with pytest.raises(ValueError, match=r"task must be in 0\.\.1, got 2"):
        widgets.plot_attributions(model, episode, task=2)
    with pytest.raises(ValueError, match="seed is for an EpisodeSampler"):
        widgets.attribution_explorer(model, episode, seed=1)
    with pytest.raises(TypeError, match="an Episode or an EpisodeSampler"):
        widgets.attribution_explorer(model, [episode])
    with pytest.raises(ValueError, match=r"query must be in 0\.\.11"):
        widgets.attribution_explorer(model, sampler, query=12)
