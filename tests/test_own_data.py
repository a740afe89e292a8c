"""Your own images: training and evaluating on folders, and classifying new images (predict)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from PIL import Image

import fslearn
from fslearn.cli import _parser, main
from fslearn.data import FewShotDataset, load_image_folder
from fslearn.data.folder import find_images, image_channels, load_image_files, save_image_folder
from fslearn.methods import PrototypicalNetwork
from fslearn.methods.protonet import prototypes, squared_euclidean_distance
from fslearn.prediction import class_probabilities, image_preparation, predict


def _subset(dataset: FewShotDataset, per_class: dict[int, slice]) -> FewShotDataset:
    """The images ``per_class[c]`` of each class ``c`` (classes relabelled in key order)."""
    keep, labels = [], []
    for new_label, (label, part) in enumerate(per_class.items()):
        indices = (dataset.labels == label).nonzero().flatten()[part]
        keep.append(indices)
        labels.append(torch.full((len(indices),), new_label))
    index = torch.cat(keep)
    return FewShotDataset(dataset.images[index], torch.cat(labels),
                          [dataset.class_names[c].replace("/", "-") for c in per_class], "subset")


@pytest.fixture(scope="module")
def drawings(omniglot_test, tmp_path_factory):
    """Six Omniglot test characters exported as dark-on-light PNGs, as a student's data would
    be: a support folder with unequal shots (1, 1, 2, 3, 3, 5) and a query folder."""
    root = tmp_path_factory.mktemp("drawings")
    classes = [0, 100, 200, 300, 400, 500]
    shots = [1, 1, 2, 3, 3, 5]
    support = _subset(omniglot_test, {c: slice(0, k) for c, k in zip(classes, shots, strict=True)})
    query = _subset(omniglot_test, {c: slice(10, 14) for c in classes})
    save_image_folder(support, root / "support", invert=True)
    save_image_folder(query, root / "query", invert=True)
    return root, support, query


def test_predict_on_exported_omniglot(drawings, capsys):
    root, _, query = drawings
    predictions = fslearn.predict("protonet-omniglot", root / "support", root / "query")
    assert len(predictions) == len(query)
    truth = [p.image.split("/")[-2] for p in predictions]
    correct = sum(p.label == t for p, t in zip(predictions, truth, strict=True))
    # the shipped model scores ~99% in 5-way 1-shot; a wrong inversion or channel order
    # falls to chance (1 in 6)
    assert correct >= 0.8 * len(predictions)
    for p in predictions:
        assert p.label != p.runner_up
        assert 0.0 <= p.runner_up_probability <= p.probability <= 1.0

    assert main(["predict", "protonet-omniglot", "--support", str(root / "support"),
                 "--query", str(root / "query"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["preparation"] == {"image_size": 28, "channels": 1, "invert": True}
    assert [p["label"] for p in printed["predictions"]] == [p.label for p in predictions]
    assert [p["image"] for p in printed["predictions"]] == [p.image for p in predictions]
    assert np.allclose([p["probability"] for p in printed["predictions"]],
                       [p.probability for p in predictions], atol=1e-6)

    assert main(["predict", "protonet-omniglot", "--support", str(root / "support"),
                 "--query", predictions[0].image, predictions[5].image]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].split() == ["image", "predicted", "probability", "runner-up", "probability"]
    assert len(lines) == 3 and lines[1].startswith(predictions[0].image)
    assert "28x28 greyscale, inverted" in captured.err


def test_unequal_shots_match_a_hand_computation(drawings):
    root, support, query = drawings
    method, record = fslearn.load_checkpoint("protonet-omniglot")
    files = find_images(root / "query")
    prepared = image_preparation(method, record)
    images = load_image_files(files, prepared.image_size, True, prepared.invert)
    # the exported PNGs are the dataset's images inverted back: reading them undoes it exactly
    assert torch.equal(images, query.images)
    got = class_probabilities(method, support, images)
    with torch.no_grad():
        support_z = method.embed(support.images.float()[None, :].squeeze(0) / 255)
        query_z = method.embed(images.float() / 255)
        centres = torch.stack([support_z[support.labels == c].mean(0) for c in range(6)])
    expected = (-((query_z[:, None] - centres[None]) ** 2).sum(-1)).softmax(-1)
    assert torch.allclose(got, expected, atol=1e-5)
    # and the package's own helpers agree with that hand computation
    assert torch.allclose(
        (-squared_euclidean_distance(query_z[None], prototypes(support_z[None],
                                                               support.labels[None], 6)))[0]
        .softmax(-1), expected, atol=1e-5)


def test_predict_with_a_method_and_a_dataset(drawings):
    root, support, _ = drawings
    torch.manual_seed(0)
    method = PrototypicalNetwork()
    first = predict(method, support, root / "query", invert=True)
    again = predict(method, support, root / "query", invert=True)
    assert [p.label for p in first] == [p.label for p in again]
    assert {p.label for p in first} <= set(support.class_names)


def _train_and_val_folders(omniglot_val, tmp_path):
    """A student's small training and validation folders: 10 and 6 classes of 6 drawings."""
    train_dir, val_dir = tmp_path / "train", tmp_path / "val"
    save_image_folder(_subset(omniglot_val, {c: slice(0, 6) for c in range(0, 40, 4)}),
                      train_dir, invert=True)
    save_image_folder(_subset(omniglot_val, {c: slice(0, 6) for c in range(1, 24, 4)}),
                      val_dir, invert=True)
    return train_dir, val_dir


def test_train_evaluate_predict_on_folders(drawings, omniglot_val, tmp_path, capsys):
    root, _, _ = drawings
    train_dir, val_dir = _train_and_val_folders(omniglot_val, tmp_path)
    out = tmp_path / "run"
    assert main(["train", "protonet", "--data", str(train_dir), "--val-data", str(val_dir),
                 "--invert", "--image-size", "20", "--way", "5", "--shot", "1", "--query", "2",
                 "--episodes", "4", "--val-every", "2", "--val-episodes", "4", "--val-way",
                 "3", "--val-query", "2", "--checkpoint-every", "2", "--out", str(out),
                 "--no-progress"]) == 0
    record = json.loads((out / "best" / "checkpoint.json").read_text())
    assert record["data"] == {"dataset": "folder", "train_data": str(train_dir),
                              "val_data": str(val_dir), "image_size": 20, "channels": 1,
                              "invert": True}
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(val_dir), "--way", "3", "--shot", "1",
                 "--query", "2", "--episodes", "10", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "folder:val" and result["episodes"] == 10
    assert main(["predict", str(out), "--support", str(root / "support"), "--query",
                 str(root / "query"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["preparation"] == {
        "image_size": 20, "channels": 1, "invert": True}
    # a model trained on a folder is not evaluated on Omniglot by accident
    assert main(["evaluate", str(out), "--way", "3", "--shot", "1", "--episodes", "10"]) == 2
    assert "--data DIR" in capsys.readouterr().err


def test_small_validation_folder_names_the_val_option_at_fault(omniglot_val, tmp_path, capsys):
    """The README's own-images command with a validation folder of 6 drawings per class: the
    training episodes (--query 5) fit, the validation's default 15 queries do not, and the
    message names --val-query, not the --shot/--query the student set."""
    train_dir, val_dir = _train_and_val_folders(omniglot_val, tmp_path)
    out = tmp_path / "run"
    assert main(["train", "protonet", "--data", str(train_dir), "--val-data", str(val_dir),
                 "--way", "5", "--shot", "1", "--query", "5", "--image-size", "28", "--invert",
                 "--episodes", "4", "--out", str(out), "--no-progress"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1, errors
    err = errors[0]
    assert "val_shot (--val-shot) + val_query (--val-query) = 1 + 15 = 16" in err, err
    assert "lower val_shot (--val-shot) or val_query (--val-query)" in err, err
    assert not out.exists() or not any(out.iterdir()), "nothing half-written"


def _write(path, array, mode):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


@pytest.fixture
def colour_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("red", "blue", "green"):
        for i in range(4):
            array = rng.integers(0, 60, (24, 30, 3), dtype=np.uint8)
            array[..., ("red", "green", "blue").index(name)] += 180
            _write(tmp_path / "colour" / name / f"{i}.jpg", array, "RGB")
    return tmp_path / "colour"


def test_colour_images_for_a_greyscale_model_name_the_fix(colour_folder, capsys):
    args = ["predict", "protonet-omniglot", "--support", str(colour_folder),
            "--query", str(colour_folder / "red")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "colour images (3 channels)" in err and "greyscale images (1 channel)" in err
    assert "--channels 1" in err
    assert main([*args, "--channels", "1"]) == 0


def test_colour_model_trained_from_a_colour_folder(colour_folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "protonet", "--data", str(colour_folder), "--way", "3", "--shot", "1",
                 "--query", "1", "--episodes", "2", "--image-size", "16", "--out", str(out),
                 "--no-progress"]) == 0
    record = json.loads((out / "best" / "checkpoint.json").read_text())
    assert record["data"]["channels"] == 3 and record["hparams"] == {"in_channels": 3}
    grey = tmp_path / "grey"
    for name in ("a", "b"):
        _write(grey / name / "0.png", np.full((16, 16), 90, np.uint8), "L")
    assert main(["predict", str(out), "--support", str(grey), "--query", str(grey)]) == 2
    assert "--channels 3" in capsys.readouterr().err
    assert main(["predict", str(out), "--support", str(grey), "--query", str(grey),
                 "--channels", "3"]) == 0


@pytest.mark.parametrize("case, expected", [
    ("empty class", "has no images"),
    ("one class", "at least 2 classes"),
    ("broken image", "broken.png could not be read as an image"),
    ("missing query", "does not exist"),
    ("text query", "is not an image file"),
    ("support is a file", "is not a folder (it is a file)"),
])
def test_predict_bad_input_is_one_clear_line(drawings, tmp_path, capsys, case, expected):
    root, _, _ = drawings
    support, query = root / "support", [str(root / "query")]
    if case == "empty class":
        support = tmp_path / "support"
        _write(support / "a" / "0.png", np.zeros((8, 8), np.uint8), "L")
        (support / "b").mkdir()
    elif case == "one class":
        support = tmp_path / "support"
        _write(support / "a" / "0.png", np.zeros((8, 8), np.uint8), "L")
    elif case == "broken image":
        support = tmp_path / "support"
        for name in ("a", "b"):
            _write(support / name / "0.png", np.zeros((8, 8), np.uint8), "L")
        (support / "b" / "broken.png").write_bytes(b"this is text, not a PNG")
    elif case == "missing query":
        query = [str(tmp_path / "nothing-here.png")]
    elif case == "text query":
        (tmp_path / "notes.txt").write_text("hello")
        query = [str(tmp_path / "notes.txt")]
    elif case == "support is a file":
        support = tmp_path / "file.png"
        _write(support, np.zeros((8, 8), np.uint8), "L")
    assert main(["predict", "protonet-omniglot", "--support", str(support), "--query",
                 *query]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fslearn predict: error: ") and err.count("\n") == 1
    assert expected in err


def test_folder_options_that_belong_to_omniglot_are_refused(tmp_path, capsys):
    assert main(["train", "protonet", "--data", str(tmp_path), "--protocol", "lake"]) == 2
    assert "--protocol choose Omniglot data" in capsys.readouterr().err
    assert main(["train", "protonet", "--val-data", str(tmp_path)]) == 2
    assert "--val-data goes with --data" in capsys.readouterr().err
    assert main(["evaluate", "protonet-omniglot", "--data", str(tmp_path), "--split", "val",
                 "--way", "5", "--shot", "1"]) == 2
    assert "leave them out" in capsys.readouterr().err


def test_transparent_and_rgb_stored_grey_images(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[2:5, 2:5] = (0, 0, 0, 255)  # black ink; the rest is fully transparent
    _write(tmp_path / "a" / "ink.png", rgba, "RGBA")
    grey_as_rgb = np.repeat(np.linspace(0, 255, 100, dtype=np.uint8).reshape(10, 10, 1), 3, 2)
    _write(tmp_path / "b" / "grey.png", grey_as_rgb, "RGB")
    files = find_images(tmp_path)
    assert [f.name for f in files] == ["ink.png", "grey.png"]
    assert image_channels(files) == 1
    dataset = load_image_folder(tmp_path, image_size=10, grayscale=None)
    assert dataset.image_shape == (1, 10, 10)
    ink = dataset.images[0, 0]
    assert int(ink[0, 0]) == 255 and int(ink[3, 3]) == 0  # transparent -> white paper


def test_every_option_has_help_with_its_default(capsys):
    parser = _parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subcommands.choices) == {"train", "evaluate", "report", "predict", "checkpoints",
                                        "data", "results", "challenge"}
    parsers = dict(subcommands.choices)
    datasets = next(a for a in parsers["data"]._actions
                    if isinstance(a, argparse._SubParsersAction))  # fslearn data DATASET
    parsers.update({f"data {k}": p for k, p in datasets.choices.items()})
    assert "data glyphs" in parsers
    for name, sub in parsers.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 10, (name, action.dest)
            shown = sub.formatter_class("fslearn")._get_help_string(action)
            has_default = action.default not in (None, False, argparse.SUPPRESS)
            if has_default and not action.required:
                assert "(default: %(default)s)" in shown, (name, action.dest)
            elif action.option_strings and not action.required:
                assert "default" in shown, (name, action.dest)  # said in words
        sub.format_help()  # renders without a formatting error
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fslearn {fslearn.__version__}"
