"""The server benchmark's correctness check: a wrong stream can never count as correct."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks.server import Expected, check_stream, failure_kind

EXPECTED = Expected(
    text="tok0 tok1 tok2 ",
    usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
)


def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    event = {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(event)}"


def usage(counts: dict[str, int]) -> str:
    return "data: " + json.dumps({"id": "c", "choices": [], "usage": counts})


def stream(
    tokens: tuple[str, ...] = ("tok0 ", "tok1 ", "tok2 "),
    *,
    finish: str | None = "stop",
    counts: dict[str, int] | None = None,
    done: bool = True,
) -> list[str]:
    lines = [chunk({"role": "assistant", "content": ""}), ""]
    for token in tokens:
        lines += [chunk({"content": token}), ""]
    if finish is not None:
        lines += [chunk({}, finish), ""]
    lines += [usage(dict(EXPECTED.usage) if counts is None else counts), ""]
    if done:
        lines += ["data: [DONE]", ""]
    return lines


def test_a_correct_stream_passes() -> None:
    assert check_stream(stream(), EXPECTED) is None


@pytest.mark.parametrize(
    ("lines", "kind"),
    [
        pytest.param(stream(("tok0 ", "tok2 ")), "wrong text", id="a token lost"),
        pytest.param(stream(("tok0 ", "tok1 ", "tok2 ", "x")), "wrong text", id="a token extra"),
        pytest.param(stream(("tok1 ", "tok0 ", "tok2 ")), "wrong text", id="tokens reordered"),
        pytest.param(stream(finish=None), "no finish chunk", id="no finish"),
        pytest.param(stream(finish="content_filter"), "finish_reason", id="block"),
        pytest.param(stream(finish="length"), "finish_reason", id="length"),
        pytest.param(
            stream(counts={"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}),
            "wrong usage",
            id="wrong usage",
        ),
        pytest.param(stream(done=False), "no [DONE]", id="no done"),
        pytest.param(stream()[:-4] + stream()[-2:], "no usage chunk", id="no usage"),
        pytest.param([*stream(), "data: {}"], "data after [DONE]", id="after done"),
        pytest.param(
            [*stream()[:4], 'data: {"error": {"message": "boom"}}', *stream()[4:]],
            "error event",
            id="error event",
        ),
        pytest.param([*stream()[:4], "data: {not json", *stream()[4:]], "not JSON", id="bad json"),
        pytest.param([], "wrong text", id="empty"),
    ],
)
def test_a_wrong_stream_fails_by_its_kind(lines: list[str], kind: str) -> None:
    problem = check_stream(lines, EXPECTED)
    assert problem is not None
    assert failure_kind(problem) == kind
