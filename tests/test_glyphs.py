"""The printed-glyph dataset: deterministic, only real glyphs, homoglyphs left out, loadable by
the folder loader and the command line as they are, and one-line errors for missing fonts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fontTools.ttLib import TTFont
from PIL import Image

from fslearn.cli import main
from fslearn.data import glyphs
from fslearn.data.folder import load_image_folder
from fslearn.data.glyphs import RECORD_FILE, build_glyphs, find_faces, load_glyphs, render_glyph
from fslearn.data.scripts import OMNIGLOT_SCRIPTS, SCRIPTS, find_scripts, script_letters

#: one family, two scripts: a build takes a few seconds
SMALL = {"scripts": ["Latin", "Greek"], "families": ["DejaVuSans"], "per_class": 8}


@pytest.fixture(scope="module")
def small_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("glyphs") / "small"
    build_glyphs(out, **SMALL)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_two_builds_are_identical_to_the_byte(small_build: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build_glyphs(again, **SMALL)
    first, second = _files(small_build), _files(again)
    assert list(first) == list(second)
    assert first == second  # the record too: it holds no time or path
    other_seed = tmp_path / "seed1"
    build_glyphs(other_seed, **{**SMALL, "seed": 1})
    assert _files(other_seed)["Latin_U+0041/00.png"] != first["Latin_U+0041/00.png"]


def test_classes_are_the_letters_less_homoglyphs(small_build: Path) -> None:
    record = json.loads((small_build / RECORD_FILE).read_text(encoding="utf-8"))
    folders = sorted(p.name for p in small_build.iterdir() if p.is_dir())
    assert record["classes"] == len(folders) == sum(record["scripts"].values())
    face = find_faces(families=["DejaVuSans"])
    regular = next(f for f in face if f.style == "Regular")
    letters = [(s.name, c) for s in find_scripts(SMALL["scripts"]) for c in script_letters(s)]
    drawn = [f"{name}_U+{ord(c):04X}" for name, c in letters if ord(c) in regular.code_points]
    # every letter the font has is a class or a homoglyph of an earlier class, never both
    assert sorted(folders + list(record["homoglyphs_left_out"])) == sorted(drawn)
    left_out = record["homoglyphs_left_out"]
    # known twins in DejaVu Sans: Greek capital alpha and Latin A, omicron and o
    assert left_out["Greek_U+0391"] == "Latin_U+0041"
    assert left_out["Greek_U+03BF"] == "Latin_U+006F"
    # ... and letters that only look alike stay apart: small alpha, O and o, C and c, and small
    # L and capital I (two rows of pixels taller at 28x28)
    for kept in ("Greek_U+03B1", "Latin_U+004F", "Latin_U+006F", "Latin_U+0043", "Latin_U+0063",
                 "Latin_U+006C", "Latin_U+0049"):
        assert kept in folders
    assert all(twin in folders for twin in left_out.values())
    # Latin's 75 letters less Đ, drawn as Ð; Greek's 80 less 20 drawn as Latin letters or
    # missing from the font
    assert left_out["Latin_U+0110"] == "Latin_U+00D0"
    assert record["scripts"] == {"Latin": 74, "Greek": 60}


def test_instances_per_class_cycle_over_the_faces(small_build: Path) -> None:
    record = json.loads((small_build / RECORD_FILE).read_text(encoding="utf-8"))
    assert sorted(f["style"] for f in record["fonts"]) == ["Bold", "BoldItalic", "Italic",
                                                            "Regular"]
    for folder in (p for p in small_build.iterdir() if p.is_dir()):
        assert sorted(p.name for p in folder.iterdir()) == [f"{i:02d}.png" for i in range(8)]
        used = record["instance_fonts"][folder.name]
        # 8 images, 4 faces with the glyph: each face twice, one after the other
        assert sorted(used) == [0, 0, 1, 1, 2, 2, 3, 3] and used[:4] == used[4:]


def test_every_instance_is_a_glyph_its_font_has(small_build: Path) -> None:
    """No empty boxes: checked against each font's own character map, read afresh."""
    record = json.loads((small_build / RECORD_FILE).read_text(encoding="utf-8"))
    paths = {face.path.name: face.path for face in find_faces(families=["DejaVuSans"])}
    cmaps = {}
    for font in record["fonts"]:
        with TTFont(paths[font["file"]]) as ttf:
            cmaps[font["file"]] = ttf.getBestCmap()
    for folder, used in record["instance_fonts"].items():
        code = int(folder.split("U+")[1], 16)
        assert all(code in cmaps[record["fonts"][i]["file"]] for i in used)


def test_images_are_omniglot_like_and_load_as_a_folder(small_build: Path) -> None:
    with Image.open(small_build / "Latin_U+0041" / "00.png") as image:
        assert image.mode == "1" and image.size == (105, 105)
        pixels = np.asarray(image.convert("L"))
    assert pixels[0, 0] == 255 and (pixels == 0).mean() < 0.3  # black ink on white paper
    dataset = load_glyphs(small_build)
    assert dataset.image_shape == (1, 28, 28) and dataset.num_classes == 134
    assert len(dataset) == 134 * 8
    plain = load_image_folder(small_build, 28, invert=True)
    assert (plain.images == dataset.images).all()
    # ink is bright, paper is 0, as the Omniglot loader gives
    assert dataset.images[:, :, 0, 0].max() == 0 and dataset.images.amax(dim=(1, 2, 3)).min() > 200


def test_command_line_evaluate_and_predict_read_the_folder(small_build: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    assert main(["evaluate", "protonet-omniglot", "--data", str(small_build), "--way", "5",
                 "--shot", "1", "--query", "2", "--episodes", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_way"] == 5 and result["accuracy"] > 0.5
    query = small_build / "Greek_U+03B1" / "07.png"
    assert main(["predict", "protonet-omniglot", "--support", str(small_build),
                 "--query", str(query), "--json"]) == 0
    prediction = json.loads(capsys.readouterr().out)
    assert prediction["preparation"]["invert"] is True
    assert prediction["predictions"][0]["label"] == "Greek_U+03B1"


def test_command_line_builds_and_records_its_command(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hebrew"
    argv = ["data", "glyphs", "--out", str(out), "--scripts", "Hebrew", "--fonts", "DejaVuSans",
            "--per-class", "2"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    record = json.loads((out / RECORD_FILE).read_text(encoding="utf-8"))
    assert printed.startswith(f"Wrote {record['classes']} classes (1 scripts")
    assert record["command"] == "fslearn " + " ".join(argv)
    assert set(record["scripts"]) == {"Hebrew"} and record["excluded_scripts"] == []


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_missing_fonts_and_scripts_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(glyphs, "NOTO_DIR", tmp_path / "no-noto")
    out = str(tmp_path / "out")
    err = _error(["data", "glyphs", "--out", out, "--scripts", "Glagolitic", "Balinese"], capsys)
    assert "no font found has letters of Balinese" in err and "fonts-noto-core" in err
    err = _error(["data", "glyphs", "--out", out, "--scripts", "Klingon"], capsys)
    assert "unknown script 'Klingon'" in err and "Canadian Syllabics" in err
    err = _error(["data", "glyphs", "--out", out, "--fonts", "NoSuchSans"], capsys)
    assert "font family 'NoSuchSans' not found" in err and "--font-dir" in err
    err = _error(["data", "glyphs", "--out", out, "--font-dir", str(tmp_path / "nope")], capsys)
    assert "is not a folder" in err
    err = _error(["data", "glyphs", "--out", out, "--scripts", "Greek", "--fonts",
                  "DejaVuSansMono", "--per-class", "0"], capsys)
    assert "--per-class must be at least 1" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    err = _error(["data", "glyphs", "--out", str(tmp_path / "full"), "--scripts", "Greek"],
                 capsys)
    assert "not an empty folder" in err
    assert _error(["data", "glyphs"], capsys).endswith("--out DIR is required: the new folder "
                                                       "to write the dataset to.")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.part").exists()


def test_without_noto_the_command_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(glyphs, "NOTO_DIR", tmp_path / "no-noto")
    out = tmp_path / "dejavu"
    assert main(["data", "glyphs", "--out", str(out), "--fonts", "DejaVuSansMono",
                 "--per-class", "1"]) == 0
    captured = capsys.readouterr()
    note = captured.err.strip()
    assert "\n" not in note and note.startswith("Note: Debian's fonts-noto-core is not installed")
    record = json.loads((out / RECORD_FILE).read_text(encoding="utf-8"))
    assert "Glagolitic" in record["scripts_without_fonts"]
    assert "Latin" in record["scripts"] and "Runic" not in record["scripts"]


def test_faces_are_dejavu_and_noto_styles_only() -> None:
    names = {face.path.name for face in find_faces()}
    assert "DejaVuSans.ttf" in names and "DejaVuSerif-BoldItalic.ttf" in names
    # matplotlib's last-resort font draws a placeholder box for every code point
    assert not any(n.startswith(("LastResort", "STIX", "cm", "DejaVuSansDisplay")) for n in names)


def test_jitter_is_small_and_deterministic() -> None:
    face = find_faces(families=["DejaVuSerif"])[0]
    plain = render_glyph(face, "R")
    jittered = [render_glyph(face, "R", np.random.default_rng([0, 82, i])) for i in range(2)]
    assert (render_glyph(face, "R", np.random.default_rng([0, 82, 0])) == jittered[0]).all()
    assert not (jittered[0] == jittered[1]).all()
    # the same letter, a little moved: most of the ink of one lies near the other's
    for image in jittered:
        assert abs(int(image.sum()) - int(plain.sum())) < 0.25 * plain.sum()
        assert not image[[0, -1]].any() and not image[:, [0, -1]].any()  # nothing cut off


def test_every_script_block_holds_letters_of_that_script() -> None:
    assert len({s.name for s in SCRIPTS}) == len(SCRIPTS)
    for script in SCRIPTS:
        assert script_letters(script), script.name
    assert len(script_letters(find_scripts(["latin"])[0])) == 75
    assert find_scripts(["canadian-syllabics", "GREEK"]) == [SCRIPTS[1], SCRIPTS[28]]


def test_exclude_omniglot_leaves_only_scripts_no_omniglot_alphabet_is_written_in() -> None:
    names = {script.name for script in find_scripts(None, exclude=["omniglot"])}
    mapped = {s for scripts in OMNIGLOT_SCRIPTS.values() for s in scripts}
    assert mapped <= {script.name for script in SCRIPTS}  # no mistyped name
    assert len(mapped) == 32 and len(names) == len(SCRIPTS) - 32
    assert not names & {"Latin", "Greek", "Runic", "Tifinagh", "Canadian Syllabics", "Ethiopic"}
    assert {"Ogham", "Cherokee", "Lao", "Thai", "Coptic"} <= names
    assert [s.name for s in find_scripts(["Latin", "Ogham"], exclude=["omniglot"])] == ["Ogham"]
    with pytest.raises(ValueError, match="unknown script 'Elvish' in --exclude"):
        find_scripts(None, exclude=["Elvish"])


def test_excluding_every_script_asked_for_is_one_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(["data", "glyphs", "--out", str(tmp_path / "x"), "--scripts", "Latin",
                  "--exclude", "omniglot"], capsys)
    assert "--exclude leaves no script" in err
