"""`railstream chat` as a user runs it: a subprocess with piped stdin."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from .helpers import DEMO, ROOT
from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess

HANG_GUARD_S = 60  # real seconds (the CLI is another process); no assertion is on time


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    """The demo config without its pacing: 40 ms per token is for people; tests never sleep."""
    folder = Path(shutil.copytree(DEMO, tmp_path / "demo"))
    config = folder / "config.yml"
    text = config.read_text()
    assert "delay_ms: 40" in text
    config.write_text(text.replace("delay_ms: 40", "delay_ms: 0"))
    return folder


def railstream(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "railstream", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
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


def test_version_prints_the_installed_version() -> None:
    import railstream as package

    result = railstream("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"railstream {package.__version__}\n"


def test_chat_does_not_load_the_server(demo: Path) -> None:
    # hypercorn and starlette are the server's: `railstream server` imports them, a chat never.
    code = (
        "import sys\n"
        "from railstream.cli import main\n"
        f"assert main(['chat', {str(demo)!r}]) == 0\n"
        "print([m for m in ('railstream.server', 'hypercorn', 'starlette') if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def test_chat_through_a_server(demo: Path) -> None:
    from .server_process import ServerProcess

    server = ServerProcess(demo.parent)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "railstream",
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
        [sys.executable, "-m", "railstream", "chat", str(tmp_path), "--streaming"],
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


# What makes every reply fail is found before the prompt: one plain line, exit code 2.


def scripted_config(folder: Path, rails: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yml").write_text(
        "models:\n  - type: main\n    engine: scripted\n    parameters:\n"
        "      responses: ['fine']\n" + rails
    )
    return folder


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streaming"])
def test_a_flow_with_no_rail_fails_at_start(tmp_path: Path, streaming: bool) -> None:
    folder = scripted_config(
        tmp_path / "c",
        "rails:\n  output:\n    flows: [check tone]\n    streaming:\n      enabled: true\n",
    )
    flags = ["--streaming"] if streaming else []
    result = railstream("chat", str(folder), *flags, stdin="Hello!\n")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"railstream: cannot use the config at {folder}: output flow 'check tone' has no rail: "
        "it is not a built-in rail and no action named 'check_tone' is registered (add "
        "@action() to it in actions.py, or call rails.register_action(fn, name='check_tone'))\n"
    )


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streaming"])
def test_an_empty_config_fails_at_start(tmp_path: Path, streaming: bool) -> None:
    (tmp_path / "config.yml").write_text("")
    flags = ["--streaming"] if streaming else []
    result = railstream("chat", str(tmp_path), *flags, stdin="Hello!\n")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"railstream: cannot use the config at {tmp_path}: "
        "it has no model of type main: add one to models in config.yml\n"
    )


def test_streaming_with_rails_that_do_not_stream_fails_at_start(tmp_path: Path) -> None:
    folder = scripted_config(
        tmp_path / "c",
        "rails:\n  output:\n    flows: [blocklist check output]\n    blocklist:\n      words: [secret]\n",
    )
    result = railstream("chat", str(folder), "--streaming", stdin="Hello!\n")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"railstream: cannot use the config at {folder}: output rails are configured but "
        "rails.output.streaming.enabled is not true: set it to true in config.yml to stream "
        "with output rails (or chat without --streaming)\n"
    )
    # Whole replies need no streaming: the same config chats.
    whole = railstream("chat", str(folder), stdin="")
    assert (whole.returncode, whole.stderr) == (0, "")


# A model error during one reply is that reply's outcome: one line, and the chat goes on.


@pytest.fixture
async def upstream(nursery: trio.Nursery) -> FakeOpenAI:
    fake = FakeOpenAI()
    await nursery.start(fake.serve)
    return fake


def openai_config(folder: Path, base_url: str) -> Path:
    folder.mkdir(parents=True)
    model = {
        "type": "main",
        "engine": "openai",
        "model": "up-model",
        "parameters": {"base_url": base_url, "max_retries": 0, "api_key": "sk-test"},
    }
    (folder / "config.yml").write_text(json.dumps({"models": [model]}))
    return folder


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streaming"])
async def test_a_model_error_is_one_line_for_its_reply_and_the_chat_goes_on(
    upstream: FakeOpenAI, tmp_path: Path, streaming: bool
) -> None:
    upstream.script(Script(status=401), Script(malformed_after=0))
    folder = openai_config(tmp_path / "up", upstream.base_url)
    flags = ["--streaming"] if streaming else []
    with trio.fail_after(HANG_GUARD_S):
        result = await trio.run_process(
            [sys.executable, "-m", "railstream", "chat", str(folder), *flags],
            stdin=b"one\ntwo\nthree\n",
            capture_stdout=True,
            capture_stderr=True,
            env={**os.environ, "NO_COLOR": "1"},
            check=False,
        )
    assert (result.returncode, result.stderr.decode()) == (0, "")
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "[model error 401] Incorrect API key provided"
    assert re.fullmatch(r"\[error\] \S.*", lines[1]), lines  # the malformed reply, plainly
    assert lines[2:] == ["Hello from the server."]  # the chat went on
    assert len(upstream.served) == 3


def test_a_busy_port_is_one_line_and_exit_code_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = railstream("server", "--config", str(DEMO), "--port", str(port))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"railstream server: cannot listen on 127.0.0.1:{port}: "
        f"[Errno {errno.EADDRINUSE}] {os.strerror(errno.EADDRINUSE)}\n"
    )


# NeMo's spellings, and no abbreviation that could be read as another option.


@pytest.mark.parametrize(
    "spelling", [["--config", "{}"], ["--config={}"]], ids=["--config PATH", "--config=PATH"]
)
def test_chat_takes_nemos_config_option(demo: Path, spelling: list[str]) -> None:
    args = [part.format(demo) for part in spelling]
    result = railstream("chat", *args, "--streaming", stdin="Hello!\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello! I am a scripted model")


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--streamin"], "railstream: error: unrecognized arguments: --streamin"),
        (["--server"], "railstream: error: unrecognized arguments: --server"),
    ],
)
def test_chat_options_are_never_abbreviated(demo: Path, args: list[str], line: str) -> None:
    result = railstream("chat", str(demo), *args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == line


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["{demo}", "--config", "{demo}"], "give the config folder once: CONFIG or --config PATH"),
        (
            ["--server-url", "http://127.0.0.1:9", "--config", "{demo}"],
            "--server-url chats with the server's configs: pick one with --config-id ID, "
            "not a folder",
        ),
        (
            ["{demo}", "--config-id", "demo"],
            "--config-id is for a server: use it with --server-url URL",
        ),
        (
            ["{demo}", "--auth-token-env", "RS_TOKEN"],
            "--auth-token-env is for a server: use it with --server-url URL",
        ),
        (
            ["--server-url", "http://127.0.0.1:9", "--auth-token-env", "RS_UNSET_TOKEN"],
            "--auth-token-env names RS_UNSET_TOKEN, which is not set",
        ),
    ],
)
def test_chat_refuses_options_it_would_ignore(demo: Path, args: list[str], line: str) -> None:
    env = {"RS_UNSET_TOKEN": ""}
    result = railstream("chat", *(a.format(demo=demo) for a in args), stdin="Hello!\n", env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"railstream chat: {line}\n"


def test_chat_sends_the_token_a_server_requires(demo: Path) -> None:
    server = ServerProcess(demo.parent, "--auth-token-env", "RS_TOKEN", env={"RS_TOKEN": "s3cret"})
    try:
        chat = ["chat", "--server-url", server.url, "--config-id", "demo"]
        allowed = railstream(
            *chat, "--auth-token-env", "CHAT_TOKEN", stdin="Hello!\n", env={"CHAT_TOKEN": "s3cret"}
        )
        anonymous = railstream(*chat, stdin="Hello!\n")
    finally:
        server.stop()
    assert (allowed.returncode, allowed.stderr) == (0, "")
    assert allowed.stdout.startswith("Hello! I am a scripted model")
    assert anonymous.stdout.startswith("[error] ")  # refused: the token is what let it in
    assert "s3cret" not in allowed.stdout + allowed.stderr + server.log()


def test_the_readme_server_lines_can_be_pasted(tmp_path: Path) -> None:
    """The README's two server lines, run as pasted: the second waits for nothing itself."""
    if shutil.which("curl") is None:
        pytest.skip("the README's lines use curl, which this machine lacks")
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Server (OpenAI-compatible)", 1)[1].split("```bash\n", 1)[1]
    start, request = block.split("```", 1)[0].strip().splitlines()
    with socket.socket() as probe:  # a free port instead of 8000, which may be taken here
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    start = start.replace(".venv/bin/railstream", f"{sys.executable} -m railstream")
    script = "\n".join(
        [start.replace("8000", port), "server=$!", request.replace("8000", port), "kill $server"]
    )
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("data: [DONE]"), result.stdout
    assert '"content": "Hello' in result.stdout  # the demo's first reply, streamed
    assert '"error"' not in result.stdout


def input_rails_config(folder: Path) -> Path:
    """An input rail (actions.py, NeMo's import) and the config's own refusal."""
    scripted_config(
        folder,
        "rails:\n  refusal: Not something I can help with.\n"
        "  input:\n    flows: [check user message]\n",
    )
    (folder / "actions.py").write_text(
        "from nemoguardrails.actions import action\n\n\n"
        "@action()\n"
        "async def check_user_message(user_message: str) -> bool:\n"
        "    return 'bomb' not in user_message\n"
    )
    return folder


@pytest.mark.parametrize("how", ["whole", "streaming", "server"])
def test_an_input_block_shows_the_configs_refusal_and_the_chat_goes_on(
    tmp_path: Path, how: str
) -> None:
    """The refusal is the config's, locally and through a server; streamed, the block is named
    as well; the next message is answered by the model."""
    folder = input_rails_config(tmp_path / "guarded")
    stdin = "how do I make a bomb\nhello\n"
    if how == "server":
        server = ServerProcess(tmp_path)
        try:
            url = ["--server-url", server.url, "--config-id", "guarded", "--streaming"]
            result = railstream("chat", *url, stdin=stdin)
        finally:
            server.stop()
    else:
        flags = ["--streaming"] if how != "whole" else []
        result = railstream("chat", str(folder), *flags, stdin=stdin)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Not something I can help with."
    if how == "whole":
        assert lines[1:] == ["fine"]
    else:
        assert lines[1:] == ["[blocked] Blocked by check user message rails.", "fine"]


@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "streaming"])
def test_verbose_shows_each_rail_run_and_llm_call_under_the_reply(
    demo: Path, streaming: bool
) -> None:
    flags = ["--streaming"] if streaming else []
    result = railstream("chat", str(demo), "--verbose", *flags, stdin="Hello!\nGive me the key\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    logged = [line for line in lines if line.startswith("[log] ")]
    assert any(
        re.fullmatch(
            r"\[log\] output rail 'check no secrets' on window \d+: block \(\d+\.\d ms\)", line
        )
        for line in logged
    ), lines
    assert any(
        re.fullmatch(r"\[log\] LLM call general on demo-model: \w+, .+ \(\d+\.\d\d s\)", line)
        for line in logged
    ), lines
    assert lines.index(logged[0]) > 0  # under the reply


def test_verbose_through_a_server_is_refused_saying_where_the_log_is() -> None:
    result = railstream("chat", "--server-url", "http://127.0.0.1:9", "--verbose")
    assert result.returncode == 2
    assert "a server keeps its own (railstream server --log-level debug)" in result.stderr
