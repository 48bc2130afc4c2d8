"""The import tree that the wheel lays out, built from the repo's folders with symbolic links.

    python -m tests.linktree build/linktree

``pyproject.toml`` maps folders to import packages (``railstream`` <- ``engine/``,
``railstream.stages`` <- ``stages/``, ...). Python finds them through setuptools' editable
import hook, but two tools need a real folder named ``railstream``: mypy, which cannot follow
an import hook, and the mutation check, which runs the tests on a copy of the project (put the
tree first on ``PYTHONPATH``: path entries are searched before the editable hook). The links
point at the folders' files, so an edit is seen at once; a new file in ``engine/`` needs the
tree built again (every run of the two tools does).
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path

__all__ = ["build_linktree", "package_dirs"]

ROOT = Path(__file__).resolve().parent.parent


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """pyproject.toml's ``[tool.setuptools.package-dir]``: import package -> folder."""
    with (root / "pyproject.toml").open("rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return {package: root / folder for package, folder in mapping.items()}


def build_linktree(dest: Path, root: Path = ROOT) -> Path:
    """Lay ``dest/<package>`` out as the wheel does, each entry a link into ``root``'s
    folders; returns ``dest`` (the folder to put on ``sys.path``)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    # Parents before children: a child package is a link inside its parent's real folder.
    for package, folder in sorted(package_dirs(root).items(), key=lambda item: item[0].count(".")):
        target = dest.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in folder.iterdir():
            if entry.name != "__pycache__" and not entry.name.endswith(".egg-info"):
                (target / entry.name).symlink_to(entry.resolve(), entry.is_dir())
    return dest


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m tests.linktree DEST")
    print(build_linktree(Path(sys.argv[1]).resolve()))
