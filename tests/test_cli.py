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
    assert result.stderr == "railstream chat: give a CONFIG folder, or --server-url URL\n"


def test_chat_through_a_server(demo: Path) -> None:
    from .server_process import ServerProcess

    server = ServerProcess(demo.parent)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine.cli",
                "chat",
                "--server-url",
                server.url,
                "--config-id",
                "demo",
                "--streaming",
            ],
            input="Hello!\nGive me the key\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Hello! I am a scripted model")
    assert lines[-1] == "[blocked] Blocked by check no secrets rails."
    assert "sk-live" not in result.stdout


def test_ctrl_c_stops_the_reply_and_the_chat_goes_on(tmp_path: Path) -> None:
    import selectors
    import signal

    long_reply = " ".join(f"word{i}" for i in range(400))
    (tmp_path / "config.yml").write_text(
        "models:\n  - type: main\n    engine: scripted\n    parameters:\n"
        f"      delay_ms: 20\n      responses: ['{long_reply}', 'second answer']\n"
    )
    chat = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "chat", str(tmp_path), "--streaming"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert chat.stdin is not None
    assert chat.stdout is not None
    try:
        chat.stdin.write(b"tell me a long story\n")
        chat.stdin.flush()
        selector = selectors.DefaultSelector()
        selector.register(chat.stdout, selectors.EVENT_READ)
        assert selector.select(timeout=60), "no reply began"  # a hang guard, not a timing
        first = os.read(chat.stdout.fileno(), 4096)
        chat.send_signal(signal.SIGINT)  # Ctrl-C while the reply streams
        rest, err = chat.communicate(input=b"and now?\n", timeout=60)
    finally:
        if chat.poll() is None:
            chat.kill()
    output = (first + rest).decode()
    assert chat.returncode == 0, err.decode()
    assert "[stopped] the reply was interrupted" in output
    assert "word399" not in output  # the long reply did not run to its end
    assert output.splitlines()[-1] == "second answer"
