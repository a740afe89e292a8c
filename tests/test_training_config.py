"""TrainingConfig: one batch_size and the sampler's own settings; the records and keywords of
the runs saved before them are read and mapped."""

from __future__ import annotations

import json
from dataclasses import fields, replace

import pytest
import torch
from conftest import make_dataset

from fslearn.checkpoints import METADATA_FILE, load_checkpoint, read_checkpoint, shipped_checkpoints
from fslearn.data.sequences import SequenceTasks
from fslearn.methods import Baseline, PrototypicalNetwork, SiameseNetwork, build_method
from fslearn.training import TrainingConfig, config_from_record, train

#: each shipped checkpoint's record (all but the three *-lake ones saved before
#: TrainingConfig.sampler existed) mapped by hand: (batch_size, sampler), from the command in
#: its record (--tasks / --batch, --pairs-per-step, --batch-size, --per-class; the default of
#: one episode per step otherwise)
SHIPPED = {
    "anil-omniglot-5way": (32, {}),
    "anil-omniglot-20way": (16, {}),
    "baseline-omniglot": (16, {}),
    "baselinepp-omniglot": (16, {}),
    "fomaml-omniglot-5way": (32, {}),
    "gnn-omniglot-5way": (60, {}),
    "fomaml-omniglot-20way-lake": (16, {}),
    "lstm-omniglot": (16, {"per_class": 10, "labels": "one_hot"}),
    "maml-omniglot-20way": (16, {}),
    "maml-omniglot-5way": (32, {}),
    "maml-sinusoid": (25, {}),
    "mann-omniglot": (16, {"per_class": 10, "labels": "one_hot"}),
    "matchingnet-omniglot": (1, {}),
    "matchingnet-omniglot-lake": (1, {}),
    "metalstm-omniglot-5way": (1, {}),
    "metasgd-omniglot-5way": (32, {}),
    "pretrained-sinusoid": (25, {}),
    "protoclr-omniglot": (1, {"augment_support": False}),
    "protonet-omniglot": (1, {}),
    "protonet-omniglot-lake": (1, {}),
    "r2d2-omniglot": (1, {}),
    "relationnet-omniglot": (1, {}),
    "reptile-omniglot-5way": (5, {}),
    "semiproto-omniglot": (1, {"unlabelled": 5, "distractors": 5, "labelled_fraction": 0.1}),
    "siamese-omniglot": (128, {}),
    "snail-omniglot-5way": (16, {}),
}
OLD = ("tasks", "pairs_per_step", "per_class", "labels")


def test_the_table_covers_every_shipped_checkpoint():
    assert set(SHIPPED) == set(shipped_checkpoints())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_shipped_record_maps_to_its_config(name):
    record = read_checkpoint(name).metadata["config"]
    config = config_from_record(record)
    assert (config.batch_size, config.sampler) == SHIPPED[name]
    # every other field as recorded, or its default where the record predates it
    defaults = TrainingConfig()
    for f in fields(TrainingConfig):
        if f.name not in ("batch_size", "sampler"):
            assert getattr(config, f.name) == record.get(f.name, getattr(defaults, f.name)), f.name
    # saved again, the new shape: no old field, and it reads back the same
    saved = config.to_dict()
    assert not set(OLD) & saved.keys() and json.loads(json.dumps(saved)) == saved
    assert config_from_record(saved) == config == TrainingConfig.from_dict(saved)


def test_old_keywords_map_to_batch_size_and_sampler():
    # the fourth argument was tasks, and is batch_size
    assert TrainingConfig(tasks=8) == TrainingConfig(batch_size=8) == TrainingConfig(60, 1, 5, 8)
    assert TrainingConfig(pairs_per_step=64).batch_size == 64
    assert TrainingConfig(per_class=10).sampler == {"per_class": 10, "labels": "one_hot"}
    assert TrainingConfig(per_class=3, labels="string", tasks=2) == TrainingConfig(
        batch_size=2, sampler={"per_class": 3, "labels": "string"}
    )
    # one-hot was every old config's labels, which meant nothing without per_class
    assert TrainingConfig(labels="one_hot") == TrainingConfig()
    assert TrainingConfig().batch_size is None and TrainingConfig().sampler == {}


@pytest.mark.parametrize(
    "values, message",
    [
        (
            dict(batch_size=4, pairs_per_step=4),
            "batch_size and pairs_per_step each size the batch of one step",
        ),
        (dict(tasks=2, batch_size=16), "batch_size and tasks each size the batch of one step"),
        (dict(tasks=2, pairs_per_step=8), "tasks and pairs_per_step each size"),
        (dict(pairs_per_step=4, per_class=3), "shape different kinds of training batches"),
        (dict(per_class=3, sampler={"per_class": 4}), "give them in sampler only"),
        (dict(sampler={"n_way": 5}), "n_way is a TrainingConfig field: give it as such"),
        (dict(sampler=[("per_class", 3)]), "must be a mapping of setting names"),
        (dict(tasks=0), "TrainingConfig.tasks must be a positive integer or None, got 0"),
        (dict(batch_size=2.5), "TrainingConfig.batch_size must be a positive integer or None"),
    ],
)
def test_conflicting_or_bad_combinations_are_one_line_errors(values, message):
    with pytest.raises(ValueError, match=message) as error:
        TrainingConfig(**values)
    assert "\n" not in str(error.value)


def test_a_record_with_an_unknown_key_is_refused_and_old_attributes_say_where_they_went():
    with pytest.raises(ValueError, match=r"Unknown training config keys \['pairs'\]"):
        config_from_record({"pairs": 3})
    with pytest.raises(
        AttributeError,
        match=r"TrainingConfig\.tasks is now "
        r"TrainingConfig\.batch_size",
    ):
        _ = TrainingConfig().tasks
    with pytest.raises(AttributeError, match=r"is now TrainingConfig\.sampler\['per_class'\]"):
        _ = TrainingConfig().per_class


# --- a run saved before the change resumes ---------------------------------------------------


def _saved_before(config: TrainingConfig, unit: str) -> dict:
    """The record the TrainingConfig of before the change wrote for ``config``: a field for each
    kind of batch (``unit``: what batch_size counts), all but one None; tasks always there."""
    values = config.to_dict()
    sampler, batch = values.pop("sampler"), values.pop("batch_size")
    return {
        **values,
        "tasks": batch or 1 if unit in ("episodes", "sequences") else 1,
        "per_class": sampler.get("per_class"),
        "labels": sampler.get("labels", "one_hot"),
        "pairs_per_step": batch if unit == "pairs" else None,
        "batch_size": batch if unit == "images" else None,
    }


def _sequence_tasks() -> SequenceTasks:
    return SequenceTasks(make_dataset([6] * 12, image_size=4), image_size=4)


def _lstm(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    inputs, outputs = _sequence_tasks().model_shape(3, "one_hot")
    return build_method("lstm", input_features=inputs, num_outputs=outputs, controller_size=6)


def _seeded(make, seed: int):
    torch.manual_seed(seed)
    return make()


COMMON = dict(episodes=6, lr=1e-3, val_every=0, checkpoint_every=2, seed=3)
RUNS = {  # unit: (method of a seed, data, config in today's words)
    "episodes": (
        lambda seed: _seeded(PrototypicalNetwork, seed),
        None,
        TrainingConfig(n_way=5, k_shot=1, n_query=2, batch_size=2, **COMMON),
    ),
    # batch_size None, one episode per step: tasks=1 in the old record
    "one episode": (
        lambda seed: _seeded(PrototypicalNetwork, seed),
        None,
        TrainingConfig(n_way=5, k_shot=1, n_query=2, **COMMON),
    ),
    "pairs": (
        lambda seed: _seeded(SiameseNetwork, seed),
        None,
        TrainingConfig(batch_size=8, **COMMON),
    ),
    "images": (
        lambda seed: _seeded(lambda: Baseline(num_classes=80, finetune_epochs=3), seed),
        None,
        TrainingConfig(batch_size=8, **{**COMMON, "lr_gamma": 1.0}),
    ),
    "sequences": (
        _lstm,
        "sequences",
        TrainingConfig(
            n_way=3, batch_size=2, sampler={"per_class": 4, "labels": "one_hot"}, **COMMON
        ),
    ),
}


@pytest.mark.parametrize("unit", sorted(RUNS))
def test_a_run_saved_before_the_change_resumes_to_the_same_weights(unit, tmp_path, omniglot_small):
    make, data, config = RUNS[unit]
    data = _sequence_tasks() if data == "sequences" else omniglot_small
    straight = train(make(3), data, config, tmp_path / "straight", progress=False, device="cpu")

    class Crash(Exception):
        pass

    def crash(done: int, loss: float) -> None:
        if done == 5:
            raise Crash

    with pytest.raises(Crash):
        train(
            make(3),
            data,
            config,
            tmp_path / "resumed",
            progress=False,
            device="cpu",
            callback=crash,
        )
    # the saved state as the code of before the change wrote it
    path = tmp_path / "resumed" / "last" / METADATA_FILE
    record = json.loads(path.read_text())
    assert record["episode"] == 4 and record["config"] == config.to_dict()
    unit = "episodes" if unit == "one episode" else unit
    record["config"] = _saved_before(config, unit)
    path.write_text(json.dumps(record))
    assert config_from_record(record["config"]) == replace(
        config, batch_size=config.batch_size or 1
    )
    resumed = train(make(99), data, config, tmp_path / "resumed", progress=False, device="cpu")
    assert resumed.history == straight.history and resumed.episodes == 6
    a = load_checkpoint(tmp_path / "straight" / "last")[0].state_dict()
    b = load_checkpoint(tmp_path / "resumed" / "last")[0].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_run_with_other_sampler_settings_is_refused_naming_them(tmp_path):
    make, _, config = RUNS["sequences"]
    train(make(3), _sequence_tasks(), config, tmp_path, progress=False, device="cpu")
    path = tmp_path / "last" / METADATA_FILE
    record = json.loads(path.read_text())
    record["config"] = _saved_before(config, "sequences") | {"labels": "string"}
    path.write_text(json.dumps(record))
    with pytest.raises(
        ValueError,
        match=r'\(saved, requested\): \{"labels": \["string", '
        r'"one_hot"\]\}',
    ):
        train(
            make(3),
            _sequence_tasks(),
            TrainingConfig(**{**config.to_dict(), "episodes": 8}),
            tmp_path,
            progress=False,
            device="cpu",
        )
