"""`railstream chat` on a pipe and on a terminal: input it cannot decode, a reader of its output
that leaves (`| head`), and line editing when typed (a subprocess each, as a user runs it)."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
from pathlib import Path

import pytest

HANG_GUARD_S = 60  # real seconds (the chat is another process); no assertion is on time


def scripted(folder: Path, *responses: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    quoted = ", ".join(f"'{r}'" for r in responses)
    (folder / "config.yml").write_text(
        "models:\n  - type: main\n    engine: scripted\n    parameters:\n"
        f"      responses: [{quoted}]\n"
    )
    return folder


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streaming"])
def test_bytes_the_locale_cannot_decode_spoil_only_their_own_line(
    tmp_path: Path, streaming: bool
) -> None:
    folder = scripted(tmp_path / "c", "first", "second", "third")
    flags = ["--streaming"] if streaming else []
    result = subprocess.run(
        [sys.executable, "-m", "railstream", "chat", str(folder), *flags],
        input=b"Hello!\n\xff\xfe caf\xc3\xa9\nWhy?\n",
        capture_output=True,
        timeout=HANG_GUARD_S,
        # The usual locale's strict UTF-8 stdin (C.UTF-8 alone would give surrogateescape).
        env={**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8:strict"},
        check=False,
    )
    stderr = result.stderr.decode()
    assert result.returncode == 0, stderr
    assert result.stdout.decode().splitlines() == ["first", "second", "third"]
    assert stderr == (
        "railstream chat: line 2 of the input is not valid utf-8 (invalid start byte at byte 1): "
        "sent with U+FFFD in place of the bytes it cannot decode\n"
    )


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streaming"])
def test_a_reader_that_leaves_ends_the_chat_quietly(tmp_path: Path, streaming: bool) -> None:
    """`railstream chat ... | head -1`: the rest has nowhere to go; no traceback, the exit
    status a shell gives a tool that SIGPIPE ended."""
    folder = scripted(tmp_path / "c", "a reply of several words")
    flags = ["--streaming"] if streaming else []
    chat = subprocess.Popen(
        [sys.executable, "-m", "railstream", "chat", str(folder), *flags],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert chat.stdin is not None
    assert chat.stdout is not None
    try:
        chat.stdin.write(b"one\n")
        chat.stdin.flush()
        assert chat.stdout.readline() == b"a reply of several words\n"
        chat.stdout.close()  # `head -1` has its line and leaves
        _, err = chat.communicate(input=b"two\nthree\n", timeout=HANG_GUARD_S)
    finally:
        if chat.poll() is None:
            chat.kill()
    assert (chat.returncode, err.decode()) == (141, "")


def test_a_typed_line_can_be_recalled_and_the_terminal_is_given_back(tmp_path: Path) -> None:
    """On a terminal the prompt has readline's history (the up arrow brings back the last
    line); Ctrl-C at the prompt leaves with the terminal's echo and line mode as they were."""
    import pty
    import termios

    folder = scripted(tmp_path / "c", "first reply", "second reply")
    pid, master = pty.fork()
    if pid == 0:  # the child: the chat, on the pty
        env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb"}
        os.execve(sys.executable, [sys.executable, "-m", "railstream", "chat", str(folder)], env)
    before = termios.tcgetattr(master)
    seen = b""

    cursor = 0  # where the last marker found ended

    def read_until(marker: bytes) -> int:
        """Read until ``marker`` appears after the last one found; where it ends."""
        nonlocal seen, cursor
        selector = selectors.DefaultSelector()
        selector.register(master, selectors.EVENT_READ)
        while marker not in seen[cursor:]:
            assert selector.select(timeout=HANG_GUARD_S), f"no {marker!r} in {seen!r}"
            try:
                seen += os.read(master, 4096)
            except OSError:  # the child has gone: the pty reads as EIO
                cursor = len(seen)
                return cursor
        cursor = seen.index(marker, cursor) + len(marker)
        return cursor

    try:
        read_until(b"> ")
        os.write(master, b"a recalled question\r")
        read_until(b"first reply")
        mark = read_until(b"> ")
        os.write(master, b"\x1b[A\r")  # up arrow (the line typed before), Enter
        end = read_until(b"second reply")
        recalled = seen[mark:end]
        read_until(b"> ")
        after_prompt = termios.tcgetattr(master)
        os.write(master, b"\x03")  # Ctrl-C at the prompt: leave
        read_until(b"\x00never")  # to the end of the output
        _, status = os.waitpid(pid, 0)
        pid = 0
        after = termios.tcgetattr(master)
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(master)
    assert b"a recalled question" in recalled, seen
    assert b"^[[A" not in seen  # no raw escape code echoed as text
    assert os.waitstatus_to_exitcode(status) == 0, seen
    # readline had the terminal without echo while it waited; the chat gave it back.
    lflags = termios.ECHO | termios.ICANON
    assert after_prompt[3] & lflags != before[3] & lflags
    assert after[3] & lflags == before[3] & lflags
