"""A new method needs its own module and one registry line, nothing else: a method written
here, outside the package, is trained, evaluated, reported and used for predictions through the
command line, with an option of its own (the minimal worked example of CONTRIBUTING.md)."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fslearn.checkpoints import load_checkpoint
from fslearn.cli import main
from fslearn.data import FewShotDataset
from fslearn.data.folder import save_image_folder
from fslearn.methods import METHODS, MetricMethod, register
from fslearn.methods.base import check_support
from fslearn.methods.options import Option
from fslearn.results import PAPER_RESULTS, STANDARD_SETTINGS, PaperFigures, paper_figures


class NearestCentroid(MetricMethod):
    """Each query goes to the closest class mean of a linear embedding; the logits are the
    negative squared distances divided by a temperature.

    Args:
        in_channels, image_size: the images' shape (set by ``fslearn train`` from the data).
        temperature: divides the logits (a larger one, softer probabilities).
    """

    name = "test_centroid"
    cli_options = (
        Option(("--temperature",), "divides the negative squared distances (a larger one, "
               "softer probabilities)", type=float, metavar="T"),
    )
    #: the temperature of every instance built, to check what reached the constructor
    built_with: ClassVar[list[float]] = []

    def __init__(self, in_channels: int = 1, image_size: int = 28,
                 temperature: float = 1.0) -> None:
        super().__init__(nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, 16)))
        self.temperature = float(temperature)
        NearestCentroid.built_with.append(self.temperature)
        self.hparams = {"in_channels": in_channels, "image_size": image_size,
                        "temperature": self.temperature}

    def scores(self, support_z: Tensor, support_y: Tensor, query_z: Tensor, n_way: int) -> Tensor:
        counts = check_support(self.name, support_z, support_y, query_z, n_way)
        one_hot = F.one_hot(support_y, n_way).to(support_z.dtype)  # [tasks, images, n_way]
        centroids = one_hot.transpose(1, 2) @ support_z / counts[..., None]
        return -torch.cdist(query_z, centroids).square() / self.temperature


@pytest.fixture(scope="module")
def registered():
    """The method registered for this module's tests only."""
    before = dict(METHODS)
    register(NearestCentroid)  # the one line a new method adds to fslearn/methods/__init__.py
    yield NearestCentroid
    del METHODS[NearestCentroid.name]
    assert before == METHODS


def _subset(dataset: FewShotDataset, classes: list[int], part: slice) -> FewShotDataset:
    """The images ``part`` of each of ``classes``, relabelled 0, 1, ..."""
    keep = [(dataset.labels == c).nonzero().flatten()[part] for c in classes]
    labels = [torch.full((len(k),), i) for i, k in enumerate(keep)]
    return FewShotDataset(dataset.images[torch.cat(keep)], torch.cat(labels),
                          [dataset.class_names[c].replace("/", "-") for c in classes], "subset")


@pytest.fixture(scope="module")
def trained(registered, tmp_path_factory):
    out = tmp_path_factory.mktemp("new_method") / "run"
    NearestCentroid.built_with.clear()
    assert main(["train", "test_centroid", "--temperature", "2", "--way", "5", "--shot", "1",
                 "--query", "2", "--episodes", "4", "--val-every", "2", "--val-episodes", "10",
                 "--checkpoint-every", "2", "--out", str(out), "--no-progress"]) == 0
    return out


def test_help_lists_the_option_with_its_default_from_the_code(registered, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "test_centroid", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "test_centroid's options" in text
    assert "--temperature T divides the negative squared distances" in text
    assert "softer probabilities) (default: 1.0)" in text


def test_the_option_reaches_the_constructor_and_the_checkpoint(trained):
    assert NearestCentroid.built_with == [2.0]
    record = json.loads((trained / "best" / "checkpoint.json").read_text())
    assert record["method"] == "test_centroid"
    assert record["hparams"] == {"in_channels": 1, "image_size": 28, "temperature": 2.0}
    assert record["command"].startswith("fslearn train test_centroid --temperature 2")
    method, _ = load_checkpoint(trained / "best")
    assert isinstance(method, NearestCentroid) and method.temperature == 2.0


def test_another_method_refuses_the_option(registered, tmp_path, capsys):
    assert main(["train", "protonet", "--temperature", "2", "--episodes", "1", "--out",
                 str(tmp_path)]) == 2
    assert ("--temperature is an option of the method (test_centroid), not of protonet"
            in capsys.readouterr().err)


def test_evaluate_and_report(trained, capsys):
    assert main(["evaluate", str(trained), "--way", "5", "--shot", "1", "--episodes", "10",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["n_way"], result["k_shot"], result["episodes"]) == (5, 1, 10)
    assert 0.0 <= result["accuracy"] <= 1.0
    assert main(["report", str(trained), "--episodes", "10", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["n_way"], r["k_shot"]) for r in report["results"]] == [
        (5, 1), (5, 5), (20, 1), (20, 5)]
    assert report["paper"] is None  # no published figures for it
    assert all(r["paper_accuracy"] is None for r in report["results"])


def test_predict_on_image_folders(trained, omniglot_test, tmp_path, capsys):
    classes = [0, 100, 200, 300]
    save_image_folder(_subset(omniglot_test, classes, slice(0, 2)), tmp_path / "support",
                      invert=True)
    save_image_folder(_subset(omniglot_test, classes, slice(10, 12)), tmp_path / "query",
                      invert=True)
    assert main(["predict", str(trained), "--support", str(tmp_path / "support"), "--query",
                 str(tmp_path / "query"), "--json"]) == 0
    output = json.loads(capsys.readouterr().out)
    names = {path.name for path in (tmp_path / "support").iterdir()}
    assert len(output["predictions"]) == 8
    assert {p["label"] for p in output["predictions"]} <= names


def test_register_refuses_training_defaults_that_no_run_has():
    # "tasks" was a TrainingConfig field before batch_size replaced it: a method declaring it
    # would silently train with one episode per step
    class OldDefaults(MetricMethod):
        name = "old-defaults"
        training_defaults: ClassVar = {"n_way": 5, "tasks": 60}

    with pytest.raises(ValueError, match=r"^OldDefaults.training_defaults names tasks, which "
                                         r"no run has: use TrainingConfig's fields \(.*batch_size"):
        register(OldDefaults)
    assert "old-defaults" not in METHODS


class PublishedCentroid(NearestCentroid):
    """The same method under another name, with published figures of its own."""

    name = "test_published_centroid"
    paper_figures: ClassVar = MappingProxyType({"classification": PaperFigures(
        "Nobody (2026), A Test Paper, Table 1", {(5, 1): 0.5, (20, 5): 0.25})})


def test_declared_paper_figures_reach_the_report(registered, tmp_path, capsys):
    register(PublishedCentroid)
    try:
        out = tmp_path / "run"
        assert main(["train", PublishedCentroid.name, "--way", "5", "--shot", "1", "--query",
                     "1", "--episodes", "2", "--val-every", "0", "--out", str(out),
                     "--no-progress"]) == 0
        capsys.readouterr()
        assert main(["report", str(out / "last"), "--episodes", "5", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["paper"] == "Nobody (2026), A Test Paper, Table 1"
        assert [r["paper_accuracy"] for r in report["results"]] == [0.5, None, None, 0.25]
        assert PAPER_RESULTS[PublishedCentroid.name] == {(5, 1): 0.5, (20, 5): 0.25}
        assert (PAPER_RESULTS["citations"][PublishedCentroid.name]
                == "Nobody (2026), A Test Paper, Table 1")
    finally:
        del METHODS[PublishedCentroid.name]
    assert PublishedCentroid.name not in PAPER_RESULTS


def test_paper_figures_are_never_inherited():
    class Child(PublishedCentroid):
        name = "test_child"

    assert paper_figures(PublishedCentroid, "classification").figures == {(5, 1): 0.5,
                                                                         (20, 5): 0.25}
    assert paper_figures(Child, "classification") is None
    assert paper_figures(NearestCentroid, "classification") is None
    # the package's own subclasses: first-order MAML of MAML, ProtoCLR of ProtoNet
    maml, fomaml = METHODS["maml"], METHODS["fomaml"]
    assert issubclass(fomaml, maml)
    assert paper_figures(fomaml, "classification").figures[20, 1] == 0.894
    assert paper_figures(maml, "classification").figures[20, 1] == 0.958
    assert paper_figures(fomaml, "regression") is None  # MAML's sinusoid table is MAML's
    assert paper_figures(METHODS["protoclr"], "classification").figures == {(5, 1): 0.88,
                                                                           (5, 5): 0.9648}


def test_every_declaration_has_the_shape_of_its_kind():
    for method in METHODS.values():
        for kind in vars(method).get("paper_figures", {}):
            declared = paper_figures(method, kind)
            assert isinstance(declared, PaperFigures) and declared.citation.strip()
            assert declared.figures or declared.table, (method.name, kind)
            if kind == "classification":
                assert set(declared.figures) <= set(STANDARD_SETTINGS), method.name
                assert all(0 < v <= 1 for v in declared.figures.values()), method.name
            elif kind == "sequences":
                assert declared.figures == declared.table[method.name]
            elif kind == "regression":
                assert all(mse > 0 for steps in declared.figures.values()
                           for mse in steps.values())


def test_paper_figures_need_a_citation():
    with pytest.raises(ValueError, match=r"^PaperFigures needs a citation"):
        PaperFigures(" ", {(5, 1): 0.9})


@pytest.mark.parametrize(("declared", "message"), [
    ({"classification": {(5, 1): 0.9}}, r"paper_figures\['classification'\] is a dict: declare "
                                         r"PaperFigures\(citation, figures\)"),
    ({"classification": PaperFigures("Nobody (2026)", {(5, 1): 98.8})},
     r"paper_figures\['classification'\] has \(5, 1\): 98.8; use \(n_way, k_shot\) among "
     r".* as fractions \(0.988, not 98.8\)"),
    ({"classification": PaperFigures("Nobody (2026)", {(10, 1): 0.9})},
     r"paper_figures\['classification'\] has \(10, 1\): 0.9;"),
])
def test_register_refuses_paper_figures_that_report_would_misread(declared, message):
    class Misdeclared(MetricMethod):
        name = "misdeclared"
        paper_figures: ClassVar = declared

    with pytest.raises(ValueError, match=r"^Misdeclared\." + message):
        register(Misdeclared)
    assert "misdeclared" not in METHODS
