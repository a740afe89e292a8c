"""Lake et al.'s one-shot challenge: finding and checking all_runs.zip, reading its runs exactly
as Omniglot is read, scoring a model on them, and the ``fslearn challenge`` command."""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import zipfile
from pathlib import Path

import pytest
import torch

from fslearn.checkpoints import load_checkpoint, shipped_checkpoints
from fslearn.cli import main
from fslearn.data import DataError, DataNotFoundError
from fslearn.data.episodes import Episode
from fslearn.data.lake import (
    LAKE_RUNS_SHA256,
    find_lake_runs,
    load_lake_runs,
    run_characters,
    runs_seen_in_training,
)
from fslearn.data.omniglot import load_omniglot_characters
from fslearn.evaluation.challenge import check_takes_challenge, score_challenge
from fslearn.methods import FewShotMethod

SHARED_RUNS = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot-lake"


@pytest.fixture(scope="module")
def runs_zip() -> Path:
    path = SHARED_RUNS / "all_runs.zip"
    if not path.is_file():
        pytest.fail(
            f"Lake's runs are not at {path}: the shared offline copy "
            f"(../shared/data/omniglot-lake) is needed."
        )
    return path


@pytest.fixture(scope="module")
def runs(runs_zip):
    return load_lake_runs(path=runs_zip)


def _answers_from_text(runs_zip: Path, run: str) -> list[int]:
    """The right class (0-based) of item01..item20, read straight from class_labels.txt."""
    with zipfile.ZipFile(runs_zip) as archive:
        lines = archive.read(f"{run}/class_labels.txt").decode().split("\n")
    pairs = dict(line.split() for line in lines if line.strip())
    return [int(pairs[f"{run}/test/item{i:02d}.png"][-6:-4]) - 1 for i in range(1, 21)]


def _copy_with_sums(source: Path, folder: Path, listed_digest: str | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "all_runs.zip"
    shutil.copyfile(source, target)
    if listed_digest is not None:
        (folder / "SHA256SUMS").write_text(f"{listed_digest}  all_runs.zip\n")
    return target


def test_the_shared_copy_is_found_beside_an_omniglot_data_root(runs_zip, tmp_path, monkeypatch):
    """The course's layout, data/omniglot and data/omniglot-lake, with FSLEARN_DATA at the
    first; and the two other places: the root itself, and root/omniglot-lake."""
    monkeypatch.setenv("FSLEARN_DATA", str(SHARED_RUNS.parent / "omniglot"))
    assert find_lake_runs().resolve() == runs_zip.resolve()
    inside = _copy_with_sums(runs_zip, tmp_path / "a" / "omniglot-lake", None)
    assert find_lake_runs(tmp_path / "a") == inside
    direct = _copy_with_sums(runs_zip, tmp_path / "b", None)
    assert find_lake_runs(tmp_path / "b") == direct


def test_a_missing_zip_says_where_it_looked_and_where_to_get_it(tmp_path):
    with pytest.raises(DataNotFoundError) as caught:
        find_lake_runs(tmp_path / "empty")
    message = str(caught.value)
    assert "\n" not in message and "all_runs.zip" in message
    assert str(tmp_path / "empty" / "omniglot-lake" / "all_runs.zip") in message
    assert "github.com/brendenlake/omniglot" in message


@pytest.mark.parametrize("damage", ["truncated", "altered"])
@pytest.mark.parametrize("listed", [True, False])
def test_a_damaged_zip_is_refused_before_it_is_read(runs_zip, tmp_path, damage, listed):
    """Cut short or one byte changed: with a SHA256SUMS beside it (the offline copy's way) it
    is 'damaged'; without, it is 'not the official' file. Either way, one line."""
    target = _copy_with_sums(runs_zip, tmp_path, LAKE_RUNS_SHA256 if listed else None)
    data = bytearray(target.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        load_lake_runs(path=target)
    message = str(caught.value)
    assert "\n" not in message and str(target) in message
    assert ("is damaged" if listed else "is not the official all_runs.zip") in message
    assert "intact copy" in message


def _repack(source: Path, target: Path, change) -> None:
    """A copy of the zip with ``change(name, data)`` applied to each member (None drops it),
    listed in a SHA256SUMS beside it: a 'trusted repack' whose content is wrong."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            data = change(name, old.read(name))
            if data is not None:
                new.writestr(name, data)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    (target.parent / "SHA256SUMS").write_text(f"{digest}  {target.name}\n")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda name, data: None if name == "run07/test/item05.png" else data,
            "has no run07/test/item05.png",
        ),
        (
            lambda name, data: (
                data.replace(b"class08", b"class09")
                if name.endswith("run01/class_labels.txt")
                else data
            ),
            "pairs 20 test items with 19 classes",
        ),
        (
            lambda name, data: b"not a png" if name == "run03/training/class02.png" else data,
            "run03/training/class02.png could not be decoded",
        ),
    ],
)
def test_a_trusted_copy_with_wrong_content_is_a_one_line_error(
    runs_zip, tmp_path, change, expected, capsys
):
    target = tmp_path / "all_runs.zip"
    _repack(runs_zip, target, change)
    with pytest.raises(DataError, match=expected):
        load_lake_runs(path=target)
    assert main(["challenge", "protonet-omniglot", "--runs", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fslearn challenge: error:") and "\n" not in err and expected in err


def test_runs_are_read_as_omniglot_is(runs, runs_zip):
    """Each run: 20 drawings to learn from and 20 to classify, 28x28 with ink 255, and the
    answers of class_labels.txt; every drawing is, pixel for pixel, a drawing of the Omniglot
    loader's evaluation set (so the preparation is the same), all of one alphabet per run."""
    assert [run.name for run in runs] == [f"run{i:02d}" for i in range(1, 21)]
    characters = load_omniglot_characters()
    names = run_characters(runs, characters)
    for run, run_names in zip(runs, names, strict=True):
        assert run.support.shape == run.query.shape == (20, 1, 28, 28)
        assert run.support.dtype == torch.uint8
        assert run.answers.tolist() == _answers_from_text(runs_zip, run.name)
        assert len({name.split("/")[0] for name in run_names}) == 1
        assert len(set(run_names)) == 20
        # the query of class j is another drawing of the same character
        evaluation = {
            characters.images[i].numpy().tobytes(): characters.names[c]
            for i, c in enumerate(characters.character.tolist())
        }
        for item, answer in enumerate(run.answers.tolist()):
            assert evaluation[run.query[item].numpy().tobytes()] == run_names[answer]
        # ink is bright, as in every Omniglot image the models see
        assert run.support.float().mean() < 128
        episode = run.episode()
        assert episode.support_x.shape == (1, 20, 1, 28, 28) and episode.n_way == 20
        assert torch.equal(episode.query_y[0], torch.arange(20))


def test_which_runs_a_training_split_holds(runs):
    """The Lake protocol trains on the background alphabets: no run's characters; the Vinyals
    splits hold some evaluation alphabets whole."""
    characters = load_omniglot_characters()
    assert runs_seen_in_training(runs, characters, "lake", "train") == [0] * 20
    seen = runs_seen_in_training(runs, characters, "vinyals", "train")
    assert 0 < sum(seen) < 400 and all(0 <= n <= 20 for n in seen)


class _Scripted(FewShotMethod):
    """Answers every query right except the first ``c % 4`` queries (by class) of its ``c``-th
    call, which get the next class: run ``c`` then has ``(c % 4) / 20`` error."""

    name = "scripted-lake-test"

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def forward(self, episode: Episode) -> torch.Tensor:
        n = episode.n_way
        answers = episode.query_y[0].clone()
        wrong = self.calls % 4
        answers[:wrong] = (answers[:wrong] + 1) % n
        self.calls += 1
        return torch.nn.functional.one_hot(answers, n).float().unsqueeze(0)


def test_scoring_a_hand_worked_set_of_answers(runs):
    model = _Scripted()
    result = score_challenge(model, runs)
    errors = [(c % 4) / 20 for c in range(20)]
    assert result.per_episode == pytest.approx(errors)
    assert result.error == pytest.approx(sum(errors) / 20)  # = 30 wrong / 400 items
    assert result.error == pytest.approx(30 / 400)
    assert result.ci95 == pytest.approx(1.96 * statistics.stdev(errors) / 20**0.5)
    assert (result.runs, result.items) == (20, 400)
    # predictions come back in file order: item i is of class answers[i]
    for c, (run, predicted) in enumerate(zip(runs, result.predictions, strict=True)):
        expected = [(a + 1) % 20 if a < c % 4 else a for a in run.answers.tolist()]
        assert predicted == expected
    assert "7.50% error" in str(result)


class _Headed(_Scripted):
    name = "headed-lake-test"

    @property
    def fixed_way(self) -> int | None:
        return 5


def test_models_that_cannot_take_the_challenge_are_refused(runs):
    with pytest.raises(ValueError, match="head of 5 classes"):
        score_challenge(_Headed(), runs)
    colour = _Scripted()
    colour.hparams = {"in_channels": 3}
    with pytest.raises(ValueError, match="greyscale"):
        check_takes_challenge(colour)
    with pytest.raises(ValueError, match="at least 2 runs"):
        score_challenge(_Scripted(), runs[:1])


def test_challenge_command_json(runs_zip, capsys):
    """The shipped prototypical network on the 20 runs: the JSON's figures agree with its own
    predictions and the answers of class_labels.txt."""
    assert main(["challenge", "protonet-omniglot", "--runs", str(runs_zip), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["runs"], report["items"]) == (20, 400)
    assert report["protocol"] == "vinyals" and report["train_split"] == "trainval"
    wrong = [
        sum(p != a for p, a in zip(predicted, _answers_from_text(runs_zip, name), strict=True))
        for name, predicted in zip(report["run_names"], report["predictions"], strict=True)
    ]
    assert report["per_episode"] == pytest.approx([w / 20 for w in wrong])
    assert report["error"] == pytest.approx(sum(wrong) / 400)
    assert report["error"] < 0.25  # a working model; chance is 95% error
    assert sum(report["seen_in_training"]) > 0  # the Vinyals splits hold some runs' characters
    assert report["published"]["people"] == 0.045


def test_challenge_command_text_and_refusals(capsys):
    assert main(["challenge", "protonet-omniglot"]) == 0  # found beside FSLEARN_DATA
    out = capsys.readouterr().out
    assert "Lake's one-shot challenge:" in out and "run20:" in out
    assert "people 4.5%" in out and "not Lake's protocol" in out
    for name, expected in (
        ("maml-omniglot-5way", "head of 5 classes"),
        ("mann-omniglot", "tested on sequences"),
        ("maml-sinusoid", "sinusoid regression model"),
    ):
        assert main(["challenge", name]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and expected in err


def test_a_lake_protocol_model_has_seen_no_run(tmp_path, capsys):
    """A tiny model trained on the background alphabets only (Lake's protocol) takes the
    challenge with no note about training characters."""
    out = tmp_path / "lake-run"
    assert (
        main(
            [
                "train",
                "protonet",
                "--protocol",
                "lake",
                "--way",
                "5",
                "--shot",
                "1",
                "--query",
                "2",
                "--episodes",
                "2",
                "--val-every",
                "0",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    _, record = load_checkpoint(out / "best")
    assert record["data"]["protocol"] == "lake"
    capsys.readouterr()
    assert main(["challenge", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["seen_in_training"] == [0] * 20 and report["protocol"] == "lake"


LAKE_CHECKPOINTS = sorted(name for name in shipped_checkpoints() if name.endswith("-lake"))


def test_a_lake_protocol_checkpoint_is_shipped():
    assert "protonet-omniglot-lake" in LAKE_CHECKPOINTS


@pytest.mark.parametrize("name", LAKE_CHECKPOINTS)
def test_shipped_lake_checkpoints_trained_on_the_background_set_only(name, runs_zip, capsys):
    """Trained on the 30 background alphabets (no run's character seen), tested on the 20
    evaluation alphabets without papers' figures beside, and far better than chance (95% error)
    on the challenge."""
    folder = shipped_checkpoints()[name]
    _, record = load_checkpoint(folder)
    assert record["data"]["protocol"] == "lake" and record["data"]["train_split"] == "train"
    assert "--protocol lake" in record["command"]
    assert {"seed", "config", "hardware", "training_seconds", "device"} <= set(record)
    stored = json.loads((folder / "results.json").read_text())
    for row in stored["results"]:
        assert row["dataset"] == "omniglot/lake/test" and row["episodes"] == 1000
        assert row["paper_accuracy"] is None  # the papers tested on the Vinyals split
    assert main(["challenge", name, "--runs", str(runs_zip), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"] == "lake" and sum(report["seen_in_training"]) == 0
    # a working model, not a good one: chance is 95% error, and the short-budget first-order
    # MAML (350 outer steps) errs on about a quarter of the items
    assert report["error"] < 0.5
