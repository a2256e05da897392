"""pyproject.toml's requirements: each one (runtime and dev) is bounded right below the next
major release after the installed one (0.x: below 1.0), so a new major is taken on only after it
was tried; and the installed release is one the requirement allows (a stale environment fails
here, not in some test that depends on a newer API)."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path
from typing import Final

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT: Final = Path(__file__).resolve().parent.parent / "pyproject.toml"

# Calendar-versioned: the year is no API version, and a bound would only freeze the CA bundle.
UNBOUNDED: Final = frozenset({"certifi"})


def _requirements() -> list[Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    texts = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        texts.extend(extra)
    return [Requirement(text) for text in texts]


def _upper(requirement: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator == "<"]
    return min(bounds) if bounds else None


@pytest.mark.parametrize("requirement", _requirements(), ids=str)
def test_dependency_is_bounded_below_its_next_major(requirement: Requirement) -> None:
    if requirement.name in UNBOUNDED:
        assert _upper(requirement) is None, f"{requirement}: listed as unbounded"
        return
    installed = Version(importlib.metadata.version(requirement.name))
    next_major = Version(str(installed.major + 1))
    assert _upper(requirement) == next_major, (
        f"{requirement}: {installed} is installed, bound it with <{next_major}"
    )


@pytest.mark.parametrize("requirement", _requirements(), ids=str)
def test_dependency_installed_release_is_allowed(requirement: Requirement) -> None:
    installed = importlib.metadata.version(requirement.name)
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is installed but pyproject.toml asks for {requirement}: "
        "run scripts/setup.sh again"
    )
