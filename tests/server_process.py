"""`railstream server` as a real subprocess on a free 127.0.0.1 port, for the tests."""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .helpers import ROOT


class ServerProcess:
    """`railstream server`; ``url`` is where it listens, read from its first line."""

    def __init__(self, config_dir: Path, *args: str, env: dict[str, str] | None = None) -> None:
        # Kept open for the server's lifetime, closed by stop().
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="railstream-server-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "railstream",
                "server",
                "--config",
                str(config_dir),
                "--port",
                "0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        self.url = self._wait_for_announcement()

    def _wait_for_announcement(self) -> str:
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 60  # a hang guard: startup takes about a second
        line = b""
        while b"\n" not in line:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                log = self.log()
                self.stop()
                raise RuntimeError(f"server did not start:\n{log}")
            data = os.read(self.process.stdout.fileno(), 4096)
            if not data:
                log = self.log()
                self.stop()
                raise RuntimeError(f"server exited:\n{log}")
            line += data
        match = re.search(rb"http://127\.0\.0\.1:\d+", line)
        assert match, line
        return match.group().decode()

    def log(self) -> str:
        return Path(self._log.name).read_text()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()
        return self.process.returncode
