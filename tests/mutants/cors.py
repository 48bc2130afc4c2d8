"""Methods and origins at the server (tests/test_server_cors.py)."""

from tests.mutation_check import Mutation

T = "tests/test_server_cors.py::"

MUTATIONS = [
    Mutation(
        name="cors: a 405 without its Allow header",
        path="engine/server/_app.py",
        old="        return _json(error_body(str(exc.detail), type=kind), exc.status_code, exc.headers)\n",
        new="        return _json(error_body(str(exc.detail), type=kind), exc.status_code)\n",
        tests=(T + "test_a_405_says_which_methods_are_allowed",),
        expect="KeyError: 'allow'",
    ),
    Mutation(
        name="cors: --cors-origin accepted and ignored",
        path="engine/server/_app.py",
        old="        if self.limits.cors_origins:\n",
        new="        if self.limits.cors_origins and False:\n",
        tests=(T + "test_a_browser_on_an_allowed_origin_passes_the_preflight_and_reads_the_reply",),
    ),
    Mutation(
        name="cors: every origin allowed",
        path="engine/server/_app.py",
        old="                    allow_origins=list(self.limits.cors_origins),\n",
        new='                    allow_origins=["*"],\n',
        tests=(T + "test_another_origin_is_refused_at_the_preflight",),
    ),
]
