"""The hypercorn the server runs on: the releases pyproject.toml allows are those the tests ran
on, and every private part of hypercorn the server overrides is still there and still used."""

from __future__ import annotations

import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement

from railstream.server import hypercorn_mismatches

from .helpers import ROOT


def test_every_private_part_of_hypercorn_the_server_overrides_is_still_used() -> None:
    mismatches = hypercorn_mismatches()
    assert not mismatches, "\n".join(mismatches)


def test_pyproject_allows_only_the_hypercorn_releases_the_tests_ran_on() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (hypercorn,) = (
        Requirement(d) for d in project["dependencies"] if Requirement(d).name == "hypercorn"
    )
    installed = version("hypercorn")
    assert hypercorn.specifier.contains(installed), (hypercorn, installed)
    # An upper bound: a release the tests never ran on is not installed silently.
    assert any(s.operator in ("<", "<=", "==", "~=") for s in hypercorn.specifier), hypercorn
    assert not hypercorn.specifier.contains("0.19.0")
