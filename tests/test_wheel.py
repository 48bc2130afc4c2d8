"""The wheel as an application meets it: one top-level import name, ``railstream``, installed
into a fresh virtual environment and used from an application folder that has packages of its
own named ``engine``, ``stages`` and ``config_schema`` (the repo's folder names)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

from .helpers import ROOT

SOURCES = ("pyproject.toml", "README.md", "engine", "stages", "config_schema")

APP = '''
import engine, stages, config_schema  # the application's own packages, found first

assert (engine.WHO, stages.WHO, config_schema.WHO) == ("app", "app", "app")

import trio

import railstream
from railstream import LLMRails, RailsConfig

assert railstream.__file__.startswith(VENV), railstream.__file__
assert railstream.__version__ == "VERSION", railstream.__version__

CONFIG = """
models:
  - type: main
    engine: scripted
    parameters: {responses: ["The pass code is swordfish, keep it quiet."]}
rails:
  output:
    flows: [check no codes]
    streaming: {enabled: true, chunk_size: 4, context_size: 2, stream_first: false}
"""


def check_no_codes(bot_message):
    return "swordfish" not in bot_message


async def main():
    rails = LLMRails(RailsConfig.from_content(yaml_content=CONFIG))
    rails.register_action(check_no_codes, "check_no_codes")
    async with rails.stream_async(messages=[{"role": "user", "content": "code?"}]) as stream:
        chunks = [chunk async for chunk in stream]
    await rails.aclose()
    print(repr("".join(chunks[:-1])))
    print(chunks[-1])


trio.run(main)
'''


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (a build writes into its source tree)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=ignore)
        else:
            shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(work / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = (work / "dist").glob("railstream-*.whl")
    return built


def test_the_wheel_installs_one_top_level_import_name(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top = {n.split("/")[0] for n in names}
        dist_info = next(n for n in top if n.endswith(".dist-info"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    assert top == {"railstream", dist_info}
    # The folders are laid out as pyproject maps them, data files included.
    for module in (
        "railstream/__init__.py",
        "railstream/py.typed",
        "railstream/stages/__init__.py",
        "railstream/stages/py.typed",
        "railstream/stages/generation/__init__.py",
        "railstream/config_schema/__init__.py",
        "railstream/server/__init__.py",
    ):
        assert module in names
    assert "railstream = railstream.cli:main" in entry_points


def test_an_application_with_its_own_engine_stages_and_config_schema_uses_the_wheel(
    wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    # pip runs from the test environment and installs into the new one (--prefix); without
    # --ignore-installed it would first uninstall the test environment's own railstream.
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    install += ["--ignore-installed", "--no-compile", "--prefix", str(venv), str(wheel)]
    subprocess.run(install, check=True, capture_output=True)
    # railstream's dependencies come from the test environment, seen after the venv's own
    # site-packages (a path listed in a .pth is appended; its own .pth files, among them the
    # editable install's import hook, are not run).
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    app = tmp_path / "app"
    for package in ("engine", "stages", "config_schema"):
        (app / package).mkdir(parents=True)
        (app / package / "__init__.py").write_text('WHO = "app"\n')
    version = wheel.name.split("-")[1]
    (app / "main.py").write_text(
        textwrap.dedent(APP).replace("VENV", repr(str(venv))).replace("VERSION", version)
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    ran = subprocess.run(
        [str(venv_python(venv)), "main.py"],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    released, error = ran.stdout.splitlines()
    assert released == "'The pass '"  # held: the context of the window that blocks
    assert '"code": "content_blocked"' in error
    assert '"param": "check no codes"' in error

    # Outside the application, none of the repo's folder names is importable.
    probe = subprocess.run(
        [
            str(venv_python(venv)),
            "-c",
            "import importlib.util as u; "
            "print([u.find_spec(n) for n in ('engine', 'stages', 'config_schema')]); "
            "import railstream.cli, sys; sys.argv = ['railstream', '--version']; "
            "railstream.cli.main()",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert probe.stdout.splitlines() == ["[None, None, None]", f"railstream {version}"], (
        probe.stderr
    )
