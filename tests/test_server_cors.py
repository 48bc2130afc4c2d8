"""The server's answers to methods and origins: a 405 names what is allowed (its ``Allow``
header, RFC 9110 15.5.6), and ``--cors-origin`` lets a browser app on another origin call it,
preflight included. A real server process, driven by httpx."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import DEMO
from .server_process import ServerProcess

APP = "https://app.example.com"
PREFLIGHT = {
    "Origin": APP,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}
BODY = {"config_id": "demo", "messages": [{"role": "user", "content": "hi"}]}


def serve(tmp: Path, *args: str) -> ServerProcess:
    shutil.copytree(DEMO, tmp / "configs" / "demo")
    return ServerProcess(tmp / "configs", *args)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = serve(tmp_path_factory.mktemp("plain"))
    yield server
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def cors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = serve(tmp_path_factory.mktemp("cors"), "--cors-origin", APP)
    yield server
    assert server.stop() == 0, server.log()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/chat/completions", "POST"),
        ("OPTIONS", "/v1/chat/completions", "POST"),
        ("DELETE", "/v1/models", "GET, HEAD"),
    ],
)
def test_a_405_says_which_methods_are_allowed(
    plain: ServerProcess, method: str, path: str, allow: str
) -> None:
    answer = httpx.request(method, f"{plain.url}{path}", timeout=30)
    assert answer.status_code == 405
    assert set(answer.headers["allow"].split(", ")) == set(allow.split(", "))
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_no_origin_is_allowed_by_default(plain: ServerProcess) -> None:
    answer = httpx.post(
        f"{plain.url}/v1/chat/completions", json=BODY, headers={"Origin": APP}, timeout=30
    )
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers


def test_a_browser_on_an_allowed_origin_passes_the_preflight_and_reads_the_reply(
    cors: ServerProcess,
) -> None:
    preflight = httpx.options(f"{cors.url}/v1/chat/completions", headers=PREFLIGHT, timeout=30)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == APP
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    answer = httpx.post(
        f"{cors.url}/v1/chat/completions", json=BODY, headers={"Origin": APP}, timeout=30
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP


def test_another_origin_is_refused_at_the_preflight(cors: ServerProcess) -> None:
    headers = {**PREFLIGHT, "Origin": "https://evil.example.com"}
    preflight = httpx.options(f"{cors.url}/v1/chat/completions", headers=headers, timeout=30)
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


@pytest.mark.parametrize("origin", ["app.example.com", "https://app.example.com/path", "ftp://x"])
def test_an_origin_that_is_not_one_stops_the_start(tmp_path: Path, origin: str) -> None:
    import subprocess
    import sys

    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "railstream",
            "server",
            "--config",
            str(DEMO),
            "--cors-origin",
            origin,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 2
    assert f"argument --cors-origin: {origin!r} is not an origin" in ran.stderr
