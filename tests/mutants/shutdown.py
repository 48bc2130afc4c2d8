"""The server's shutdown (tests/test_server_shutdown.py): on SIGTERM each stream ends with the
shutting-down event and [DONE], a whole reply still being made gets a 503, upstreams are
cancelled, new connections and late bodies are refused, and the process exits 0 (issue 13,
item 10)."""

from __future__ import annotations

from tests.mutation_check import Mutation

_APP = "engine/server/_app.py"
_SHUTDOWN = "engine/server/_shutdown.py"
_SSE_REPLY = "engine/server/_sse_reply.py"
_DISCONNECT = "engine/server/_disconnect.py"
_RUN = "engine/server/_run.py"
_CLI = "engine/cli/_serve.py"
_T = "tests/test_server_shutdown.py::"
_STREAMS = (
    _T + "test_sigterm_ends_every_stream_with_an_error_and_done_cancels_upstreams_and_exits_0"
)
_GRACE = (
    _T
    + "test_during_the_grace_a_short_stream_finishes_a_whole_reply_gets_503_and_no_new_connection"
)
_LATE = _T + "test_a_request_whose_body_arrives_after_sigterm_gets_a_503"

MUTATIONS = [
    Mutation(
        name="shutdown: streams in flight are not ended when the grace is over",
        path=_SHUTDOWN,
        old="        for reply in list(self.replies):\n            reply.end()\n",
        new="",
        tests=(_STREAMS,),
        # hypercorn's hard stop cuts them: the client reads a chunked body never finished.
        expect="RemoteProtocolError",
    ),
    Mutation(
        name="shutdown: a stream whose model is silent is not woken to end",
        path=_SSE_REPLY,
        old="        if self._waiting is not None:\n            self._waiting.cancel()\n",
        new="",
        tests=(_GRACE,),
        expect="RemoteProtocolError",
    ),
    Mutation(
        name="shutdown: an ended stream gets [DONE] without the shutting-down event",
        path=_SSE_REPLY,
        old="                event(SHUTTING_DOWN)\n",
        new="",
        tests=(_STREAMS,),
        expect="is_shutting_down_event",
    ),
    Mutation(
        name="shutdown: the ended streams are not counted in the log",
        path=_SSE_REPLY,
        old="                self._shutdown.streams_ended += 1\n",
        new="",
        tests=(_STREAMS,),
        expect="shut down on SIGTERM: 4 streams",
    ),
    Mutation(
        name="shutdown: a whole reply still being made is not ended at the grace (cut later)",
        path=_DISCONNECT,
        old="        nursery.start_soon(end_on_shutdown, nursery.cancel_scope)\n",
        new="",
        tests=(_GRACE,),
        expect="RemoteProtocolError",
    ),
    Mutation(
        name="shutdown: no grace bound (streams run until hypercorn cuts them)",
        path=_RUN,
        old="            with trio.move_on_after(limits.shutdown_grace_s):\n",
        new="            with trio.CancelScope():\n",
        tests=(_STREAMS,),
        expect="RemoteProtocolError",
    ),
    Mutation(
        name="shutdown: the listener stays open after the signal",
        path=_RUN,
        old="shutdown_trigger=stop.wait,",
        new="shutdown_trigger=served.wait,",
        tests=(_GRACE,),
        expect="it still accepts connections",
    ),
    Mutation(
        name="shutdown: a body that completes after the signal is served",
        path=_APP,
        old="            if self.shutdown.begun:\n",
        new="            if False:\n",
        tests=(_LATE,),
        expect="HTTP/1.1 200",
    ),
    Mutation(
        name="shutdown: hypercorn cuts every connection at the signal (no grace)",
        path=_RUN,
        old="    config.graceful_timeout = limits.shutdown_grace_s + _HARD_STOP_AFTER_GRACE_S\n",
        new="    config.graceful_timeout = 0.0\n",
        tests=(_STREAMS,),
        expect="RemoteProtocolError",
    ),
    Mutation(
        name="shutdown: a second signal is ignored (the grace runs its course)",
        path=_RUN,
        old="                            shutdown.end_all()  # a second signal: no more grace\n",
        new="                            pass\n",
        tests=(_T + "test_a_second_signal_ends_the_streams_at_once",),
        expect="the stream was still running after the second signal",
    ),
    Mutation(
        name="shutdown: a negative grace is accepted",
        path=_CLI,
        old="    if not args.shutdown_grace_s >= 0:  # NaN too\n",
        new="    if args.shutdown_grace_s < 0:\n",
        tests=(_T + "test_a_negative_grace_is_refused",),
    ),
]
