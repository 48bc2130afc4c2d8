"""Slow clients (tests/test_server_slow_clients.py): headers sent a byte at a time are cut
at the header timeout, and a body that never finishes holds no concurrency slot."""

from __future__ import annotations

from tests.mutation_check import Mutation

_T = "tests/test_server_slow_clients.py::"

MUTATIONS = [
    Mutation(
        name="slow clients: a request's headers are timed by the idle bound alone",
        path="engine/server/_run.py",
        old="            until = idle_until if began is None else began + header_timeout\n",
        new="            until = idle_until\n",
        tests=(_T + "test_headers_sent_a_byte_at_a_time_are_cut_at_the_header_timeout",),
    ),
    Mutation(
        name="slow clients: a request takes its slot before its body is read",
        path="engine/server/_app.py",
        old=(
            "        body = await read_body(self.limits, request)\n"
            "        done = take_slot(self.limits)\n"
        ),
        new=(
            "        done = take_slot(self.limits)\n"
            "        body = await read_body(self.limits, request)\n"
        ),
        tests=(_T + "test_bodies_that_never_finish_take_no_concurrency_slot",),
    ),
]
