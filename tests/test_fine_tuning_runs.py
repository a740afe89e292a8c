"""Runs with fewer labels and runs that start from another checkpoint (section 7.3: a
Prototypical Network fine-tuned from a ProtoCLR embedding on a fraction of the labelled
classes): ``copy_matching_parameters``, ``fslearn train --init-from`` and
``--labelled-classes``."""

from __future__ import annotations

import json

import pytest
import torch

from fslearn.checkpoints import copy_matching_parameters, load_checkpoint
from fslearn.cli import main
from fslearn.methods import MAML, ProtoCLR, PrototypicalNetwork


def test_a_protonet_takes_every_weight_of_a_protoclr_embedding():
    torch.manual_seed(0)
    source = ProtoCLR()
    torch.manual_seed(1)
    target = PrototypicalNetwork()
    copied = copy_matching_parameters(target, source)
    assert copied == sorted(source.state_dict())  # buffers (batch norm statistics) too
    images = torch.rand(6, 1, 28, 28)
    source.eval(), target.eval()
    torch.testing.assert_close(target.embed(images), source.embed(images))


def test_another_architecture_is_refused_in_one_line():
    with pytest.raises(ValueError, match="no parameter of the source checkpoint matches") as err:
        copy_matching_parameters(MAML(), PrototypicalNetwork())
    assert "\n" not in str(err.value)


def test_the_command_line_starts_from_the_checkpoint_and_records_it(tmp_path):
    out = tmp_path / "tuned"
    # a tiny learning rate: the weights stay those of the checkpoint it starts from
    assert main(["train", "protonet", "--init-from", "protonet-omniglot", "--way", "5",
                 "--episodes", "1", "--lr", "1e-12", "--val-every", "0", "--out", str(out),
                 "--no-progress"]) == 0
    tuned, record = load_checkpoint(out / "last")
    shipped, shipped_record = load_checkpoint("protonet-omniglot")
    for name, value in shipped.state_dict().items():
        if name.endswith("num_batches_tracked") or "running" in name:
            continue  # batch norm statistics move in a training step, whatever the rate
        torch.testing.assert_close(tuned.state_dict()[name], value, msg=name)
    assert record["init_from"] == {"checkpoint": "protonet-omniglot", "method": "protonet",
                                   "weights_sha256": shipped_record["weights_sha256"],
                                   "tensors": len(shipped.state_dict())}


def test_labelled_classes_keep_a_seeded_fraction_of_the_classes(tmp_path, capsys):
    def run(name: str, *extra: str) -> dict:
        out = tmp_path / name
        assert main(["train", "protonet", "--way", "5", "--episodes", "1", "--val-every", "0",
                     "--out", str(out), "--no-progress", *extra]) == 0
        return json.loads((out / "last" / "checkpoint.json").read_text())

    record = run("one", "--labelled-classes", "0.01", "--seed", "3")
    assert record["data"]["labelled_classes"] == {"fraction": 0.01, "classes": 41}  # of 4112
    assert "train[41 classes]" in capsys.readouterr().err
    assert "labelled_classes" not in run("all")["data"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--labelled-classes", "0"], "--labelled-classes must be a fraction in"),
    (["--labelled-classes", "1.5"], "--labelled-classes must be a fraction in"),
    (["--init-from", "maml-sinusoid"], "no parameter of the source checkpoint matches"),
])
def test_bad_values_are_refused_in_one_line(tmp_path, capsys, extra, message):
    assert main(["train", "protonet", "--way", "5", "--episodes", "1", "--val-every", "0",
                 "--out", str(tmp_path / "bad"), "--no-progress", *extra]) != 0
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error
