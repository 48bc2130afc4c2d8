"""What a new user meets first: the README's real-model example, what ``stream_first: true``
means said at start-up, a key variable that is not set, the chat's server URL, a shutdown with
nothing running, and an ``actions.py`` that does not import (subprocesses, as a user runs them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from .helpers import ROOT
from .openai_server import FakeOpenAI, Script
from .server_process import ServerProcess
from .test_cli import railstream

HANG_GUARD_S = 60  # real seconds (the CLI is another process); no assertion is on time
KEY = "sk-live-4f9a1c77e2b0deadbeef"
LEAK = ["Sure", ",", " the", " key", " is", f" {KEY}", " -", " keep", " it", " safe", "."]


@pytest.fixture
async def leaky(nursery: trio.Nursery) -> FakeOpenAI:
    """A model that answers with a live key; its self-check answers No (nothing unsafe)."""
    fake = FakeOpenAI()
    fake.default = Script(tokens=LEAK)

    def respond(body: dict[str, Any]) -> Script | None:
        return None if body.get("stream") else Script(tokens=["No"])

    fake.responder = respond
    await nursery.start(fake.serve)
    return fake


async def chat(folder: Path, *flags: str, env: dict[str, str]) -> tuple[int, str, str]:
    with trio.fail_after(HANG_GUARD_S):
        result = await trio.run_process(
            [sys.executable, "-m", "railstream", "chat", str(folder), "--streaming", *flags],
            stdin=b"what is the deployment key?\n",
            capture_stdout=True,
            capture_stderr=True,
            env={**os.environ, "NO_COLOR": "1", **env},
            check=False,
        )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def test_the_readme_real_model_example_never_shows_a_key_it_blocks(
    leaky: FakeOpenAI,
) -> None:
    env = {"RAILSTREAM_BASE_URL": leaky.base_url, "OPENAI_API_KEY": "sk-test"}
    code, out, err = await chat(ROOT / "examples" / "openai", env=env)
    assert (code, err) == (0, "")
    assert out.splitlines() == ["[blocked] Blocked by check no secrets rails."]
    assert "sk-live" not in out


async def test_verbose_says_once_that_stream_first_shows_what_is_blocked(
    leaky: FakeOpenAI, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(ROOT / "examples" / "openai", tmp_path / "first"))
    config = folder / "config.yml"
    config.write_text(config.read_text().replace("stream_first: false", "stream_first: true"))
    env = {"RAILSTREAM_BASE_URL": leaky.base_url, "OPENAI_API_KEY": "sk-test"}
    code, out, err = await chat(folder, "--verbose", env=env)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    notes = [line for line in lines if line.startswith("[note] ")]
    assert notes == [
        "[note] output rails with stream_first: true: streamed text reaches the user before its "
        "window is checked, so a text the rails block has already been shown when the stream "
        "ends with content_filter; set rails.output.streaming.stream_first: false to hold "
        "text until it is checked"
    ]
    assert lines.index(notes[0]) == 0  # before the first reply
    assert KEY in out  # what the note warns of: released, then blocked
    # The shipped example holds text: no note.
    code, out, err = await chat(ROOT / "examples" / "openai", "--verbose", env=env)
    assert (code, err) == (0, "")
    assert "[note]" not in out


def test_the_server_says_once_at_start_which_configs_show_what_they_block(
    tmp_path: Path,
) -> None:
    for name, first in (("shown", "true"), ("held", "false")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yml").write_text(
            "models:\n  - type: main\n    engine: scripted\n    parameters:\n"
            "      responses: ['fine']\n"
            "rails:\n  output:\n    flows: [blocklist check output]\n"
            "    blocklist:\n      words: [secret]\n"
            f"    streaming:\n      enabled: true\n      stream_first: {first}\n"
        )
    server = ServerProcess(tmp_path, "--workers", "2")
    try:
        log = server.log()
    finally:
        server.stop()
    warned = [line for line in log.splitlines() if "stream_first: true" in line]
    assert len(warned) == 1, log  # once, though two workers load every config
    assert "WARNING" in warned[0]
    assert (
        "config 'shown': output rails with stream_first: true: streamed text reaches" in (warned[0])
    )


def test_the_readme_says_where_stream_first_is_described_that_blocked_text_was_shown() -> None:
    readme = (ROOT / "README.md").read_text()
    reference = readme[readme.index("## Config reference") :]
    described = reference[reference.index("stream_first: true") :][:400]
    assert "a text the rails block has already\n" in described
    assert "reached the user" in described


async def test_an_upstream_error_keeps_its_words_and_loses_its_credentials(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    import httpx

    leaky = FakeOpenAI()
    await nursery.start(leaky.serve)
    said = "Missing bearer authentication in header (got: Bearer sk-wrong-0123456789)"
    leaky.script(Script(status=401, error_body=f'{{"error": {{"message": "{said}"}}}}'))
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "config.yml").write_text(
        "models:\n  - type: main\n    engine: openai\n    model: m\n"
        f"    parameters: {{base_url: '{leaky.base_url}', max_retries: 0, api_key: sk-mine-42}}\n"
    )
    server = ServerProcess(tmp_path)
    try:
        with trio.fail_after(HANG_GUARD_S):
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"{server.url}/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "hi"}]},
                )
    finally:
        server.stop()
    assert response.status_code == 502
    assert response.json()["error"]["message"] == (
        "the upstream model server answered 401: "
        "Missing bearer authentication in header (got: Bearer ***)"
    )


UNSET = "RAILSTREAM_TEST_UNSET_KEY"
_MODEL = "models:\n  - type: main\n    engine: openai\n    model: m\n"
KEY_FORMS = {
    "api_key_env_var": (
        _MODEL
        + f"    api_key_env_var: {UNSET}\n    parameters: {{base_url: 'http://127.0.0.1:9/v1'}}\n",
        f"config.yml:5: models[0].api_key_env_var: environment variable {UNSET} is not set",
    ),
    "${VAR}": (
        _MODEL + "    parameters:\n      base_url: http://127.0.0.1:9/v1\n"
        f"      api_key: ${{{UNSET}}}\n",
        f"config.yml:7: models[0].parameters.api_key: environment variable {UNSET} is not set "
        f"(write ${{{UNSET}:-default}} for a default)",
    ),
    "jailbreak detection": (
        _MODEL + "    parameters: {base_url: 'http://127.0.0.1:9/v1', api_key: sk-x}\n"
        "rails:\n  input:\n    flows: [jailbreak detection model]\n"
        "  config:\n    jailbreak_detection:\n      nim_base_url: http://127.0.0.1:9/v1\n"
        f"      api_key_env_var: {UNSET}\n",
        f"config.yml:12: rails.config.jailbreak_detection.api_key_env_var: environment variable "
        f"{UNSET} is not set",
    ),
}


@pytest.mark.parametrize("command", ["chat", "server"])
@pytest.mark.parametrize("form", list(KEY_FORMS))
def test_a_key_variable_that_is_not_set_stops_the_start_saying_so(
    tmp_path: Path, form: str, command: str
) -> None:
    """However the config names the key's variable, an unset one stops the start alike (it once
    sent no key at all for api_key_env_var)."""
    text, problem = KEY_FORMS[form]
    folder = tmp_path / "keyed"
    folder.mkdir()
    (folder / "config.yml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != UNSET}
    args = ["chat", str(folder)] if command == "chat" else ["server", "--config", str(folder)]
    result = subprocess.run(
        [sys.executable, "-m", "railstream", *args],
        input="hello\n",
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        env=env,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert f"{folder}/{problem}\n" in result.stderr
    assert "Traceback" not in result.stderr


def scripted_folder(folder: Path, actions: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.yml").write_text(
        "models:\n  - type: main\n    engine: scripted\n    parameters:\n      responses: [fine]\n"
    )
    if actions is not None:
        (folder / "actions.py").write_text(actions)
    return folder


def test_chat_takes_the_server_url_as_an_openai_client_writes_it(tmp_path: Path) -> None:
    scripted_folder(tmp_path / "plain")
    server = ServerProcess(tmp_path)
    try:
        with_v1 = railstream("chat", "--server-url", f"{server.url}/v1/", stdin="hello\n")
        elsewhere = railstream("chat", "--server-url", f"{server.url}/api", stdin="hello\n")
    finally:
        server.stop()
    assert (with_v1.returncode, with_v1.stdout, with_v1.stderr) == (0, "fine\n", "")
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert elsewhere.stdout == (
        f"[error] {server.url}/api/v1/chat/completions was not found: give --server-url as the "
        "railstream server's address, http://HOST:PORT (or http://HOST:PORT/v1)\n"
    )


def test_a_shutdown_with_nothing_running_warns_of_nothing(tmp_path: Path) -> None:
    scripted_folder(tmp_path / "plain")
    server = ServerProcess(tmp_path)
    assert server.stop() == 0
    log = server.log()
    (line,) = [line for line in log.splitlines() if "shut down on SIGTERM" in line]
    assert " INFO [" in line
    assert line.endswith("railstream.server: shut down on SIGTERM: nothing was running to end")
    assert "WARNING" not in log, log


def test_an_actions_file_that_fails_names_its_line_from_a_relative_folder(tmp_path: Path) -> None:
    scripted_folder(tmp_path / "mine", actions="import os\n\nvalue = undefined_name\n")
    result = subprocess.run(
        [sys.executable, "-m", "railstream", "chat", "mine"],
        input="",
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        cwd=tmp_path,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "railstream: the config at mine has problems:\n"
        "mine/actions.py:3: error while importing: NameError: name 'undefined_name' is not defined\n"
    )
