"""The project's surface: exports, every module importable first, and README's commands
agreeing with CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import railstream
import railstream.cli
import railstream.config_schema
import railstream.facade
import railstream.runtime
import railstream.server
import railstream.stages
import railstream.stages.generation
import railstream.stages.rails

from .helpers import ROOT
from .test_layout import find_modules

PACKAGES = [
    railstream,
    railstream.cli,
    railstream.config_schema,
    railstream.facade,
    railstream.runtime,
    railstream.server,
    railstream.stages,
    railstream.stages.generation,
    railstream.stages.rails,
]


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_public_names_are_sorted_and_importable(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names == sorted(names, key=str.casefold) or names == sorted(names)
    for name in names:
        assert getattr(package, name) is not None


def test_spec_public_api_is_exported_from_railstream() -> None:
    for name in ("LLMRails", "RailsConfig", "ConfigError", "StreamingNotSupportedError", "action"):
        assert name in railstream.__all__
    from railstream.streaming import StreamingHandler

    assert StreamingHandler is railstream.StreamingHandler


def modules() -> list[str]:
    """Every module of the package by its import name, but ``python -m``'s."""
    return [name for name in find_modules() if not name.endswith(".__main__")]


@pytest.mark.parametrize("module", modules())
def test_every_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """Whichever module an application imports first, it loads: nothing depends on import
    order."""
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
    from railstream import RailsConfig

    readme = (ROOT / "README.md").read_text()
    block = (
        readme.split("## Config reference (`config.yml`)", 1)[1]
        .split("```yaml\n", 1)[1]
        .split("```", 1)[0]
    )
    config = RailsConfig.from_content(yaml_content=block)
    assert config.rails.output.streaming.rail_timeouts_s == {"check no secrets": 2}
    assert config.rails.output.blocklist.words == ("internal-only", "launch code")


def test_public_objects_show_the_path_users_import_them_by() -> None:
    import inspect
    from importlib.metadata import version

    shown = {
        name: obj.__module__
        for name in railstream.__all__
        for obj in [getattr(railstream, name)]
        if inspect.isclass(obj) or inspect.isfunction(obj)
    }
    assert set(shown.values()) == {"railstream"}, shown
    assert repr(railstream.LLMRails) == "<class 'railstream.LLMRails'>"
    assert railstream.stages.generation.ChatRequest.__module__ == "railstream.stages.generation"
    assert railstream.__version__ == version("railstream")


def test_a_config_still_loads_after_its_classes_were_renamed() -> None:
    """The renaming reads each attrs class's string annotations first: cattrs, structuring
    a config later, must not look for them in railstream's namespace."""
    config = railstream.RailsConfig.from_content(
        yaml_content="models:\n  - {type: main, engine: scripted, parameters: {responses: [hi]}}\n"
    )
    assert config.model("main") is not None
    assert railstream.GenerationOptions.__module__ == "railstream"
    assert railstream.facade.parse_options({"log": {"llm_calls": True}}).log.llm_calls
