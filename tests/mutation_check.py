"""The mutation check: each promise, broken on purpose in a copy of the project, fails a test.

    python -m tests.mutation_check            # every mutation in tests/mutants/
    python -m tests.mutation_check -k cancel  # those whose name holds "cancel"
    python -m tests.mutation_check --list

A mutation replaces one exact piece of code (it must occur exactly ``count`` times, so a
mutation that no longer matches the code is reported, never silently skipped) and names the
tests that guard it. The check copies the project once, applies each mutation in turn, runs
its tests, and restores the file. A mutation is *caught* when the tests fail, in time, and not
only through the hang guard (a ``TooSlowError``): a test that needs its hang guard to notice a
regression guards nothing worth the name. With ``expect``, the failure output must also
contain that text, so the failure is the right one.

Each module in ``tests/mutants/`` holds a ``MUTATIONS`` list; add to it with every promise.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from tests.linktree import build_linktree

__all__ = ["Mutation", "all_mutations", "main"]

ROOT = Path(__file__).resolve().parent.parent
LINKTREE = Path("build") / "linktree"
_SKIP = {
    ".git",
    ".venv",
    ".bench",
    "__pycache__",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "build",
    "dist",
    "results",
}


@attrs.frozen(kw_only=True)
class Mutation:
    """One regression: in ``path``, ``old`` becomes ``new``; ``tests`` must then fail."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    count: int = 1
    expect: str | None = None  # text the failure output must contain
    timeout_s: float = 240


def all_mutations() -> list[Mutation]:
    from tests import mutants

    found: list[Mutation] = []
    for info in sorted(pkgutil.iter_modules(mutants.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"tests.mutants.{info.name}")
        found.extend(module.MUTATIONS)
    names = [m.name for m in found]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SystemExit(f"mutation names must be unique: {sorted(duplicates)}")
    return found


def _copy_project(dest: Path) -> None:
    def ignore(_dir: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _SKIP or n.endswith(".egg-info")}

    shutil.copytree(ROOT, dest, ignore=ignore, dirs_exist_ok=True)


def _pytest(copy: Path, tests: Sequence[str], timeout: float) -> tuple[int | None, str, float]:
    # The copy's own railstream first: its link tree is searched before the editable install's
    # import hook, which would load the unmutated project.
    path = os.pathsep.join([str(copy / LINKTREE), str(copy)])
    env = {**os.environ, "PYTHONPATH": path, "HYPOTHESIS_PROFILE": "dev"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return None, out, time.monotonic() - started
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def _judge(mutation: Mutation, code: int | None, output: str) -> str | None:
    """None when caught; else why not."""
    if code is None:
        return f"the tests did not end within {mutation.timeout_s:g}s (a hang, not a failure)"
    if code == 0:
        return "the tests passed"
    failure_lines = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
    # A test that failed and then left the process to die at exit (a thread the mutation
    # left running, killed by a signal: a negative code) failed all the same.
    if code != 1 and not (code < 0 and failure_lines):
        return f"pytest exited {code} (not a test failure: collection or usage error?)"
    if failure_lines and all("TooSlowError" in line for line in failure_lines):
        return "caught only by the hang guard (TooSlowError)"
    if mutation.expect is not None and mutation.expect not in output:
        return f"the tests failed, but not with {mutation.expect!r}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-k", dest="keyword", help="only mutations whose name holds this")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    mutations = [m for m in all_mutations() if not args.keyword or args.keyword in m.name]
    if args.list:
        for m in mutations:
            print(f"{m.name}\n    {m.path}; guarded by {', '.join(m.tests)}")
        return 0
    if not mutations:
        print("no mutation matches")
        return 2
    with tempfile.TemporaryDirectory(prefix="railstream-mutants-") as tmp:
        copy = Path(tmp) / "main"
        _copy_project(copy)
        build_linktree(copy / LINKTREE, copy)
        # The tests read the shared corpus (../shared/nemo-configs) beside the project.
        shared = ROOT.parent / "shared"
        if shared.exists():
            (Path(tmp) / "shared").symlink_to(shared.resolve())
        # The guarding tests must pass on the unmutated code, or a failure proves nothing.
        guards = sorted({t for m in mutations for t in m.tests})
        code, output, took = _pytest(copy, guards, 600)
        if code != 0:
            print(output[-4000:])
            print(f"the guarding tests fail on the unmutated code (exit {code}); fix that first")
            return 1
        print(f"baseline: {len(guards)} guarding test selections pass ({took:.1f}s)")
        survivors = []
        for mutation in mutations:
            target = copy / mutation.path
            original = target.read_text()
            found = original.count(mutation.old)
            if found != mutation.count:
                print(
                    f"STALE   {mutation.name}: {mutation.path} holds the code to break "
                    f"{found} times, expected {mutation.count}; update the mutation"
                )
                survivors.append(mutation)
                continue
            target.write_text(original.replace(mutation.old, mutation.new))
            try:
                code, output, took = _pytest(copy, mutation.tests, mutation.timeout_s)
            finally:
                target.write_text(original)
            why = _judge(mutation, code, output)
            if why is None:
                failed = next((ln for ln in output.splitlines() if ln.startswith("FAILED")), "")
                print(f"caught  {mutation.name} ({took:.1f}s) {failed[7:][:150]}")
            else:
                print(f"MISSED  {mutation.name} ({took:.1f}s): {why}")
                survivors.append(mutation)
        total = len(mutations)
        print(f"{total - len(survivors)} of {total} mutations caught")
        return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
