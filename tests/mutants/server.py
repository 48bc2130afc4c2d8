"""The server under faults (tests/test_server_errors.py): clients that leave, broken configs,
failures mid-stream, upstream errors and what a client may learn of them (issue 13)."""

from tests.mutation_check import Mutation

T = "tests/test_server_errors.py::"
LEAVES = (T + "test_a_client_that_leaves_before_any_reply_stops_the_upstream_at_once",)
NO_RAIL = (T + "test_a_config_whose_flow_has_no_rail_stops_the_server_from_starting",)
CANNOT_STREAM = (T + "test_a_stream_request_to_a_config_that_cannot_stream_is_a_400_with_the_fix",)
FAILS_MID_STREAM = (
    T + "test_a_stream_that_fails_after_its_headers_ends_with_an_error_event_and_done",
)
WHERE = (T + "test_errors_never_tell_a_client_where_the_upstream_lives",)
UPSTREAM_STATUS = (
    T + "test_upstream_errors_reach_the_client_as_the_upstream_s_with_retry_after",
    "tests/test_server.py::test_an_upstream_error_before_the_first_token_is_a_real_http_status",
)
KEY_ECHO = (T + "test_an_upstream_that_echoes_the_key_never_shows_it_to_the_client",)
CONFIG_ID = (T + "test_a_config_id_with_anything_around_it_is_refused",)
AUTH = (T + "test_the_bearer_scheme_is_case_insensitive_and_health_hides_the_configs",)

MUTATIONS = [
    # 1. a client that leaves before the first chunk, or during a whole reply
    Mutation(
        name="server: no one watches for the client's disconnect before the reply starts",
        path="engine/server/_disconnect.py",
        old="        nursery.start_soon(watch, nursery.cancel_scope)\n",
        new="",
        tests=LEAVES,
        expect="the upstream request runs on after the client left",
    ),
    # 2. broken configs
    Mutation(
        name="server: configs are not checked at start-up (a flow with no rail loads)",
        path="engine/server/_registry.py",
        old="                loaded.check()\n",
        new="",
        tests=NO_RAIL,
        expect="DID NOT RAISE",
    ),
    Mutation(
        name="server: a problem found after loading loses its line",
        path="config_schema/_loader.py",
        old="    return ConfigProblem(file=doc.file, line=doc.line(path), path=where, problem=problem)\n",
        new="    return ConfigProblem(file=doc.file, line=None, path=where, problem=problem)\n",
        tests=NO_RAIL,
        expect=":11: rails.output.flows[1]",
    ),
    Mutation(
        name="server: a stream request to a config that cannot stream is a 500",
        path="engine/server/_app.py",
        old="        except StreamingNotSupportedError as exc:\n",
        new="        except ZeroDivisionError as exc:\n",
        tests=CANNOT_STREAM,
        expect="assert 500 == 400",
    ),
    # 3. a failure after the headers
    Mutation(
        name="server: a stream's failure after its headers cuts the connection",
        path="engine/server/_sse_reply.py",
        old='            return {**_STREAM_FAILED, "failed": True}\n',
        new="            raise\n",
        tests=FAILS_MID_STREAM,
        expect="the server cut the connection mid-stream",
    ),
    Mutation(
        name="server: a stream's failure after its headers is not logged",
        path="engine/server/_sse_reply.py",
        old='                log_failure(self._redactor, f"config {self._config_id!r}: the stream failed", exc)\n',
        new="                pass\n",
        tests=FAILS_MID_STREAM,
        expect="the stream failed",
    ),
    # 4. where the model lives
    Mutation(
        name="server: the provider's (POST <url>) reaches the client",
        path="engine/server/_upstream.py",
        old='        text = _WHERE.sub("", text)\n',
        new="",
        tests=WHERE,
        expect="startswith",
    ),
    Mutation(
        name="server: an upstream's address in an error reaches the client",
        path="engine/server/_upstream.py",
        old="            text = text.replace(endpoint, UPSTREAM)\n",
        new="            pass\n",
        tests=WHERE,
        expect="not in",
    ),
    Mutation(
        name="server: a mid-stream model error reaches the client unredacted",
        path="engine/server/_sse_reply.py",
        old="                event(self._redactor.error(item))\n",
        new="                event(item)\n",
        tests=WHERE,
        expect="startswith",
    ),
    Mutation(
        name="server: an error before the first token reaches the client unredacted",
        path="engine/server/_upstream.py",
        old='    message = redactor.for_client(str(error.get("message")))\n',
        new='    message = str(error.get("message"))\n',
        tests=WHERE + KEY_ECHO,
        expect="AssertionError",
    ),
    # 5. the upstream's errors are the upstream's
    Mutation(
        name="server: an upstream 401 reaches the client as a 401",
        path="engine/server/_upstream.py",
        old='    401: (502, "upstream_auth_failed"),\n',
        new='    401: (401, "upstream_auth_failed"),\n',
        tests=UPSTREAM_STATUS,
        expect="AuthenticationError",
    ),
    Mutation(
        name="server: an upstream 429's Retry-After is dropped",
        path="engine/server/_upstream.py",
        old='            headers["Retry-After"] = str(math.ceil(retry))\n',
        new="            pass\n",
        tests=UPSTREAM_STATUS,
        expect="retry-after",
    ),
    Mutation(
        name="provider: a refusal's Retry-After is not kept on the DownstreamError",
        path="stages/generation/_openai.py",
        old="            retry_after_s=_retry_after(response),\n",
        new="",
        tests=UPSTREAM_STATUS,
        expect="retry-after",
    ),
    Mutation(
        name="stream: the provider's exception behind an error chunk is not kept",
        path="engine/facade/_rails_stream.py",
        old="            self._error_cause = event.cause\n",
        new="",
        tests=UPSTREAM_STATUS,
        expect="retry-after",
    ),
    # 19. secrets, config ids, the bearer scheme, health
    Mutation(
        name="server: the model's key (from the environment) is not among the secrets redacted",
        path="engine/server/_upstream.py",
        old="                    found.add(key)\n",
        new="                    pass\n",
        tests=KEY_ECHO,
        expect="AssertionError",
    ),
    Mutation(
        name="server: a config_id of 'guarded\\n' is accepted (match with $, not fullmatch)",
        path="engine/server/_registry.py",
        old="            if not _ID.fullmatch(config_id):\n                raise HttpError(",
        new='            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$", config_id):\n                raise HttpError(',
        tests=CONFIG_ID,
        expect="assert 404 == 400",
    ),
    Mutation(
        name="server: the bearer scheme must be spelt 'Bearer'",
        path="engine/server/_limits.py",
        old='    return scheme.lower() == "bearer" and hmac.compare_digest(\n',
        new='    return scheme == "Bearer" and hmac.compare_digest(\n',
        tests=AUTH,
        expect="== [200, 200, 200, 200]",
    ),
    Mutation(
        name="server: /healthz lists the configs to anyone",
        path="engine/server/_app.py",
        old="        if authorized(self.limits, request):\n",
        new="        if True:\n",
        tests=AUTH,
        expect="== (200, {'status': 'ok'})",
    ),
]
