"""The server's connections (tests/test_server_transport.py): each is given back, idle ones
close on every protocol, slow and oversized bodies are answered, bursts wait in the backlog,
and JSON that parses but is no valid request is a 400 (issue 13, items 13 to 18)."""

from __future__ import annotations

from tests.mutation_check import Mutation

_SSE_REPLY = "engine/server/_sse_reply.py"
_LIMITS = "engine/server/_limits.py"
_RUN = "engine/server/_run.py"
_WIRE = "engine/server/_wire.py"
_T = "tests/test_server_transport.py::"
_GIVEN_BACK = _T + "test_a_streamed_response_gives_its_connection_back"
_BAD_JSON = _T + "test_json_that_parses_but_is_no_valid_request_is_a_400"

MUTATIONS = [
    Mutation(
        name="transport: a stream's final send is made within the disconnect watcher's reach",
        path=_SSE_REPLY,
        old="                last = await self._write(send)\n",
        new=(
            "                last = await self._write(send)\n"
            '                await send({"type": "http.response.body", "body": last,'
            ' "more_body": False})\n'
            "                last = None\n"
        ),
        tests=(
            _GIVEN_BACK,
            _T + "test_an_h2c_stream_ends_and_its_idle_connection_is_closed",
            _T + "test_streams_past_the_fd_limit_are_all_served",
        ),
        expect="after [DONE]",
    ),
    Mutation(
        name="transport: no time bound on reading a body",
        path=_LIMITS,
        old="        with trio.move_on_after(limits.body_timeout_s):\n",
        new="        with trio.CancelScope():\n",
        tests=(_T + "test_bodies_that_never_finish_are_answered_408_and_free_their_slots",),
        expect="HTTP/1.1 408",
    ),
    Mutation(
        name="transport: a client that leaves mid-body logs a traceback",
        path=_LIMITS,
        old="    except ClientDisconnect:\n",
        new="    except ZeroDivisionError:\n",
        tests=(_T + "test_a_client_that_leaves_mid_body_is_logged_in_one_line",),
        expect="a client left before its request body was complete",
    ),
    Mutation(
        name="transport: the listen backlog is hypercorn's 100",
        path=_RUN,
        old="    config.backlog = limits.backlog\n",
        new="    config.backlog = 100\n",
        tests=(_T + "test_a_burst_of_connections_waits_in_the_backlog",),
        expect="connections got into the backlog",
    ),
    Mutation(
        name="transport: --keep-alive-timeout is ignored",
        path=_RUN,
        old="    config.keep_alive_timeout = limits.keep_alive_timeout_s\n",
        new="    config.keep_alive_timeout = 3600.0\n",
        tests=(_T + "test_an_idle_http_1_connection_is_closed",),
    ),
    Mutation(
        name="transport: an h2c connection's idle timer is never armed",
        path=_RUN,
        old='    setattr(hypercorn.trio.tcp_server, "ProtocolWrapper", _ProtocolWrapper)  # noqa: B010\n',
        new="",
        tests=(_T + "test_an_idle_h2c_connection_that_never_sent_a_request_is_closed",),
        expect="the idle h2c connection was still open",
    ),
    Mutation(
        name="transport: an oversized body is answered before it is read (a reset)",
        path=_LIMITS,
        old="    body = bytearray()\n    read = 0\n",
        new="    if oversized:\n        raise too_large\n    body = bytearray()\n    read = 0\n",
        tests=(
            _T + "test_an_oversized_body_gets_a_413_from_the_async_openai_client",
            _T + "test_an_oversized_raw_upload_reads_a_413_and_a_clean_close",
        ),
    ),
    Mutation(
        name="transport: an oversized chunked body is answered before it is read (a reset)",
        path=_LIMITS,
        old="                elif read > limits.max_body_bytes + _DISCARD_BYTES:\n",
        new="                elif True:\n",
        tests=(_T + "test_an_oversized_body_gets_a_413_over_the_same_connection",),
    ),
    Mutation(
        name="transport: a body declared far too large is waited for",
        path=_LIMITS,
        old="        raise too_large  # not worth reading: the client may get a reset instead\n",
        new="        pass\n",
        tests=(_T + "test_a_body_declared_far_too_large_is_answered_before_it_is_sent",),
    ),
    Mutation(
        name="transport: deep JSON past the parser's recursion is a 500",
        path=_WIRE,
        old="    except RecursionError:\n",
        new="    except ZeroDivisionError:\n",
        tests=(_BAD_JSON,),
        expect="deep-past-the-parser",
    ),
    Mutation(
        name="transport: NaN and Infinity are read as numbers",
        path=_WIRE,
        old="json.loads(raw, parse_constant=_no_constant)",
        new="json.loads(raw)",
        tests=(_BAD_JSON,),
        expect="[nan]",
    ),
    Mutation(
        name="transport: parsed JSON is not checked for depth and lone surrogates",
        path=_WIRE,
        old="    _check_json(body)\n",
        new="",
        tests=(_BAD_JSON,),
    ),
    Mutation(
        name="transport: a lone surrogate goes on to the model",
        path=_WIRE,
        old='                raise _bad("the request body has a lone surrogate in a string") from None\n',
        new="                pass\n",
        tests=(_BAD_JSON,),
        expect="[lone-surrogate]",
    ),
    Mutation(
        name="transport: a new connection's first request gets only the keep-alive timeout",
        path="engine/server/_run.py",
        old="        idle_until = trio.current_time() + (keep_alive if self._had_request else first_request)\n",
        new="        idle_until = trio.current_time() + keep_alive\n",
        tests=(
            "tests/test_server_transport.py::"
            "test_a_new_connection_has_its_body_timeout_to_send_its_first_request",
        ),
    ),
]

BUSY = (
    "tests/test_server_transport.py::"
    "test_a_request_that_reaches_a_busy_server_on_a_kept_alive_connection_is_answered"
)

MUTATIONS += [
    Mutation(
        name="transport: a kept-alive connection's next request, unread at the timeout, is dropped",
        path="engine/server/_run.py",
        old="            if self.context.terminated.is_set() or extended or not self._request_waiting():\n",
        new="            if True:\n",
        tests=(BUSY,),
    ),
    Mutation(
        name="transport: a request read but not yet started at the timeout is dropped",
        path="engine/server/_run.py",
        old="            if self._in_request:\n                return  # it has begun: stopping this timer is under way\n",
        new="",
        tests=(BUSY,),
    ),
]
