"""The project's surface: exports, import order, and README's commands agreeing with CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import config_schema
import engine
import stages

from .helpers import ROOT

PACKAGES = [engine, stages, config_schema]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_public_names_are_sorted_and_importable(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names == sorted(names, key=str.casefold) or names == sorted(names)
    for name in names:
        assert getattr(package, name) is not None


def test_spec_public_api_is_exported_from_engine() -> None:
    for name in ("LLMRails", "RailsConfig", "ConfigError", "StreamingNotSupportedError", "action"):
        assert name in engine.__all__
    from engine.streaming import StreamingHandler

    assert StreamingHandler is engine.StreamingHandler


def modules() -> list[str]:
    found = []
    for package in ("engine", "stages", "config_schema"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


@pytest.mark.parametrize("module", modules())
def test_every_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """engine and stages import each other's modules: whichever comes first must work."""
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_opens_with_the_setup_and_test_commands_and_ci_runs_the_test_one() -> None:
    main_job, tests = readme_commands()[:2]
    assert "railstream chat examples/demo --streaming" in main_job
    assert tests.endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, "the CI script must run README's test command verbatim"


def test_demo_paths_in_readme_exist() -> None:
    assert (ROOT / "examples" / "demo" / "config.yml").is_file()
    assert (ROOT / "examples" / "demo" / "actions.py").is_file()
    assert Path(ROOT / "benchmarks" / "README.md").is_file()


def test_the_readme_config_reference_is_a_valid_config() -> None:
    from engine import RailsConfig

    readme = (ROOT / "README.md").read_text()
    block = (
        readme.split("## Config reference (`config.yml`)", 1)[1]
        .split("```yaml\n", 1)[1]
        .split("```", 1)[0]
    )
    config = RailsConfig.from_content(yaml_content=block)
    assert config.rails.output.streaming.rail_timeouts_s == {"check no secrets": 2}
    assert config.rails.output.blocklist.words == ("internal-only", "launch code")
