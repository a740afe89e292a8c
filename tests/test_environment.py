"""environment.yml (conda) installs what pyproject.toml declares: same packages, same versions."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("book", "dev")  # the extras that environment.yml installs besides the dependencies

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(requirement: str) -> tuple[str, str]:
    """`name[extras] >= 1, < 2 ; marker` -> (normalised name, specifier without spaces)."""
    match = _REQUIREMENT.match(requirement.split(";", 1)[0])
    assert match, f"cannot parse requirement {requirement!r}"
    return _normalise(match.group(1)), re.sub(r"\s+", "", match.group(3))


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    extras = project.get("optional-dependencies", {})
    for extra in EXTRAS:
        assert extra in extras, f"pyproject.toml has no [project.optional-dependencies] {extra}"
        requirements += extras[extra]
    parsed: dict[str, str] = {}
    for requirement in requirements:
        name, spec = _parse(requirement)
        if name == "fslearn":  # the package's own extras, e.g. fslearn[book]
            continue
        parsed[name] = spec
    return parsed


def _environment() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))


def _environment_pip_requirements() -> dict[str, str]:
    pip_lists = [
        item["pip"]
        for item in _environment().get("dependencies", [])
        if isinstance(item, dict) and "pip" in item
    ]
    assert len(pip_lists) == 1, "environment.yml must have exactly one `- pip:` list"
    parsed: dict[str, str] = {}
    for line in pip_lists[0]:
        line = str(line).strip()
        if line.startswith("-"):  # pip options: --extra-index-url, -e . (the package itself)
            continue
        name, spec = _parse(line)
        assert name not in parsed, f"environment.yml lists {name} twice"
        parsed[name] = spec
    return parsed


def test_environment_has_python_311_and_pip() -> None:
    conda = [str(item) for item in _environment()["dependencies"] if not isinstance(item, dict)]
    assert any(re.fullmatch(r"python\s*=+\s*3\.11(\.\*)?", item) for item in conda), (
        f"environment.yml must pin python=3.11, has {conda}"
    )
    assert "pip" in conda, "environment.yml must list pip among the conda dependencies"


def test_environment_installs_the_package_itself() -> None:
    pip_list = next(
        item["pip"] for item in _environment()["dependencies"] if isinstance(item, dict)
    )
    assert "-e ." in [str(line).strip() for line in pip_list], (
        "environment.yml should install the package itself with `-e .`"
    )


def test_same_packages_in_pyproject_and_environment() -> None:
    declared = _pyproject_requirements()
    conda = _environment_pip_requirements()
    missing = sorted(set(declared) - set(conda))
    extra = sorted(set(conda) - set(declared))
    problems = [f"missing from environment.yml: {name}{declared[name]}" for name in missing]
    problems += [
        f"in environment.yml but not in pyproject.toml (dependencies + {', '.join(EXTRAS)}): {name}"
        for name in extra
    ]
    assert not problems, "\n".join(problems)


def test_same_version_specifiers() -> None:
    declared = _pyproject_requirements()
    conda = _environment_pip_requirements()
    different = [
        f"{name}: pyproject.toml says {declared[name]!r}, environment.yml says {conda[name]!r}"
        for name in sorted(set(declared) & set(conda))
        if _specifier_set(declared[name]) != _specifier_set(conda[name])
    ]
    assert not different, "\n".join(different)


def _specifier_set(spec: str) -> frozenset[str]:
    return frozenset(part for part in spec.split(",") if part)


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ("jupyter-book>=1,<2", ("jupyter-book", ">=1,<2")),
        ("Jupyter_Book >= 1, < 2", ("jupyter-book", ">=1,<2")),
        ("torch>=2.3; python_version >= '3.10'", ("torch", ">=2.3")),
        ("fslearn[book]", ("fslearn", "")),
    ],
)
def test_requirement_parser(requirement: str, expected: tuple[str, str]) -> None:
    assert _parse(requirement) == expected
