"""The hypercorn the server runs on (tests/test_hypercorn_contract.py)."""

from tests.mutation_check import Mutation

_T = "tests/test_hypercorn_contract.py"

MUTATIONS = [
    Mutation(
        name="hypercorn contract: a release renaming TCPServer._idle_timeout goes unnoticed",
        path="engine/server/_hypercorn_contract.py",
        old='            "async def _idle_timeout" in _tcp_server() and "self._idle_timeout" in _tcp_server()\n',
        new='            "async def _idle_timeout_renamed" in _tcp_server()\n',
        tests=(f"{_T}::test_every_private_part_of_hypercorn_the_server_overrides_is_still_used",),
        expect="changed hypercorn.trio.tcp_server.TCPServer._idle_timeout",
    ),
    Mutation(
        name="hypercorn contract: pyproject lets any later hypercorn in",
        path="pyproject.toml",
        old='    "hypercorn>=0.18,<0.19",\n',
        new='    "hypercorn>=0.17",\n',
        tests=(f"{_T}::test_pyproject_allows_only_the_hypercorn_releases_the_tests_ran_on",),
    ),
]
