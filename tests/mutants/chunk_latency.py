"""A released chunk's latency, from its oldest and its newest token's arrival
(tests/test_chunk_latency.py, the server's histogram in tests/test_observability.py; issue 16)."""

from tests.mutation_check import Mutation

T = "tests/test_chunk_latency.py::"
HELD = T + "test_a_held_chunks_oldest_token_waited_for_its_window_and_its_newest_less"
MERGED = T + "test_batches_coalesced_on_the_way_keep_their_first_and_last_arrival"
BOUNDED = T + "test_a_long_held_reply_keeps_one_windows_arrivals_not_the_whole_replys"
ARRIVALS = T + "test_a_held_window_knows_when_the_tokens_it_releases_first_and_last_arrived"
QUEUED = T + "test_batches_queued_together_keep_the_last_ones_arrival_and_never_understate_an_age"
RAILS = T + "test_passthroughs_queued_together_are_released_with_the_first_and_last_arrival"
SERVER = (
    "tests/test_observability.py::"
    "test_metrics_have_each_released_chunks_latency_from_its_oldest_and_newest_token"
)

MUTATIONS = [
    Mutation(
        name="chunk latency: a batch handed on is not stamped",
        path="stages/generation/_stage.py",
        old="await hand_on(self._outbox, TokenBatch(batch, self._now()))",
        new="await hand_on(self._outbox, TokenBatch(batch))",
        tests=(HELD, MERGED),
    ),
    Mutation(
        name="chunk latency: a batch offered is not stamped",
        path="stages/generation/_stage.py",
        old="self._outbox.send_nowait(TokenBatch(batch, self._now()))",
        new="self._outbox.send_nowait(TokenBatch(batch))",
        tests=(SERVER,),
    ),
    Mutation(
        name="chunk latency: batches coalesced by buffering keep the first one's arrival",
        path="stages/_buffering.py",
        old="        tokens += queued.tokens\n        at = queued.at\n",
        new="        tokens += queued.tokens\n",
        tests=(QUEUED,),
    ),
    Mutation(
        name="chunk latency: a window's record of arrivals is never trimmed",
        path="stages/_buffering.py",
        old="        if drop > 0:\n            del self._positions[:drop]\n            del self._times[:drop]\n",
        new="",
        tests=(BOUNDED,),
    ),
    Mutation(
        name="chunk latency: a window records the arrival of its context tail's first token only",
        path="stages/_buffering.py",
        old="(start, end - keep - 1, end - keep, end - 1)",
        new="(start, end - keep, end - 1)",
        tests=(ARRIVALS,),
    ),
    Mutation(
        name="chunk latency: a held chunk's oldest token taken for its newest",
        path="stages/rails/_stage.py",
        old="window.arrived_at(first), window.arrived_at(upto - 1)",
        new="window.arrived_at(upto - 1), window.arrived_at(upto - 1)",
        tests=(HELD, SERVER),
    ),
    Mutation(
        name="chunk latency: passthroughs coalesced by the rails stage keep the first's arrival",
        path="stages/rails/_stage.py",
        old="            parts.append(queued.text)\n            newest_at = queued.newest_at\n",
        new="            parts.append(queued.text)\n",
        tests=(RAILS,),
    ),
    Mutation(
        name="chunk latency: chunks merged for a slow consumer keep the first one's arrival",
        path="engine/facade/_rails_stream.py",
        old="            parts.append(queued.text)\n            newest_at = queued.newest_at\n",
        new="            parts.append(queued.text)\n",
        tests=(MERGED,),
    ),
    Mutation(
        name="chunk latency: the server never observes it",
        path="engine/server/_sse_reply.py",
        old="                    latency(self._stream.last_chunk_latency())\n",
        new="                    pass\n",
        tests=(SERVER,),
    ),
    Mutation(
        name="chunk latency: the oldest token's histogram is given the newest's",
        path="engine/server/_observe.py",
        old="                oldest.observe(latency.oldest_s)\n",
        new="                oldest.observe(latency.newest_s)\n",
        tests=(SERVER,),
    ),
]
