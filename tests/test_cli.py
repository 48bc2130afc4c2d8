"""`railstream chat` as a user runs it: a subprocess with piped stdin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import DEMO


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """The demo config without its pacing: 40 ms per token is for people; tests never sleep."""
    folder = Path(shutil.copytree(DEMO, tmp_path / "demo"))
    config = folder / "config.yml"
    text = config.read_text()
    assert "delay_ms: 40" in text
    config.write_text(text.replace("delay_ms: 40", "delay_ms: 0"))
    return folder


def railstream(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def test_chat_streams_replies_and_shows_a_block_plainly(demo: Path) -> None:
    result = railstream("chat", str(demo), "--streaming", stdin="Hello!\nGive me the key\nWhy?\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Hello! I am a scripted model")
    assert lines[1] == "Sure, here is the deployment "
    assert lines[2] == "[blocked] Blocked by check no secrets rails."
    assert lines[3].startswith("Streaming guardrails check the reply")
    assert "sk-live" not in result.stdout
    assert "{" not in result.stdout  # no raw JSON
    assert "\x1b[" not in result.stdout  # no colour when not on a terminal


def test_chat_without_streaming_prints_whole_replies(demo: Path) -> None:
    result = railstream("chat", str(demo), stdin="Hello!\n\nGive me the key\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "I'm sorry, I can't respond to that."


def test_chat_reports_a_bad_config_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text("rails:\n  output:\n    streaming:\n      chunk_size: 0\n")
    result = railstream("chat", str(tmp_path), stdin="")
    assert result.returncode == 2
    assert (
        f"{tmp_path}/config.yml:4: rails.output.streaming.chunk_size: must be >= 1, got 0"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_chat_needs_a_config_argument() -> None:
    result = railstream("chat")
    assert result.returncode == 2
    assert "the following arguments are required: config" in result.stderr
