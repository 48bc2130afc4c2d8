"""`railstream chat` and `railstream server` as a user runs them (tests/test_cli.py)."""

from tests.mutation_check import Mutation

_CLI = "tests/test_cli.py"

MUTATIONS = [
    Mutation(
        name="cli: a flow with no rail is found only at the first message (a traceback)",
        path="engine/cli/_chat.py",
        old="        rails._rails()  # resolves every output flow to its rail, as each call does\n",
        new="        pass\n",
        tests=(f"{_CLI}::test_a_flow_with_no_rail_fails_at_start",),
    ),
    Mutation(
        name="cli: a config with no main model is found only at the first message",
        path="engine/cli/_chat.py",
        old='    if rails.provider("main") is None:\n',
        new="    if False:\n",
        tests=(f"{_CLI}::test_an_empty_config_fails_at_start",),
    ),
    Mutation(
        name="cli: --streaming with rails that do not stream is found only at the first message",
        path="engine/cli/_chat.py",
        old="    if streaming and output.flows and not output.streaming.enabled:\n",
        new="    if False:\n",
        tests=(f"{_CLI}::test_streaming_with_rails_that_do_not_stream_fails_at_start",),
    ),
    Mutation(
        name="cli: a model error in a whole (non-streamed) reply ends the chat with a traceback",
        path="engine/cli/_chat.py",
        old="            except GenerationError as exc:\n",
        new="            except ZeroDivisionError as exc:\n",
        tests=(f"{_CLI}::test_a_model_error_is_one_line_for_its_reply_and_the_chat_goes_on",),
    ),
    Mutation(
        name="cli: serve() lets a busy port out as hypercorn's nested groups",
        path="engine/server/_run.py",
        old="    except* OSError as failed:\n",
        new="    except* ZeroDivisionError as failed:\n",
        tests=(f"{_CLI}::test_a_busy_port_is_one_line_and_exit_code_2",),
    ),
    Mutation(
        name="cli: server catches a busy port around trio.run as a bare OSError (never is one)",
        path="engine/cli/_serve.py",
        old="    except* CannotListenError as failed:\n"
        "        # Raised before anything was served; this run's nursery wraps it in a group.\n"
        "        cannot_listen = first_leaf(failed)\n",
        new="    except CannotListenError as failed:\n        cannot_listen = failed\n",
        tests=(f"{_CLI}::test_a_busy_port_is_one_line_and_exit_code_2",),
    ),
    Mutation(
        name="cli: chat has no --config option (NeMo's spelling)",
        path="engine/cli/_args.py",
        old='        "--config",\n        dest="config_option",\n',
        new='        "--config-folder",\n        dest="config_option",\n',
        tests=(f"{_CLI}::test_chat_takes_nemos_config_option",),
    ),
    Mutation(
        name="cli: chat options may be abbreviated again",
        path="engine/cli/_args.py",
        old='"chat", help="chat with a guarded model in the terminal", allow_abbrev=False\n',
        new='"chat", help="chat with a guarded model in the terminal"\n',
        tests=(f"{_CLI}::test_chat_options_are_never_abbreviated",),
    ),
    Mutation(
        name="cli: chat with --server-url silently ignores a config folder",
        path="engine/cli/_chat.py",
        old="        if folder:\n",
        new="        if False:\n",
        tests=(f"{_CLI}::test_chat_refuses_options_it_would_ignore",),
    ),
    Mutation(
        name="cli: chat --auth-token-env sends no bearer token",
        path="engine/cli/_remote.py",
        old='        self.headers = {"Authorization": f"Bearer {token}"} if token else {}\n',
        new="        self.headers = {}\n",
        tests=(f"{_CLI}::test_chat_sends_the_token_a_server_requires",),
    ),
    Mutation(
        name="cli: chat loads the server (hypercorn, starlette) to set up its log",
        path="engine/cli/_logging.py",
        old='    handler = logging.StreamHandler(sys.stderr)\n    if log_format == "json":\n',
        new="    from railstream.server import JsonFormatter  # noqa: F401\n\n"
        '    handler = logging.StreamHandler(sys.stderr)\n    if log_format == "json":\n',
        tests=(f"{_CLI}::test_chat_does_not_load_the_server",),
    ),
    Mutation(
        name="cli: README's server start line does not wait for readiness",
        path="README.md",
        old=" & until curl -sf http://127.0.0.1:8000/healthz >/dev/null;"
        " do kill -0 $! || break; sleep 0.2; done\n",
        new=" &\n",
        tests=(f"{_CLI}::test_the_readme_server_lines_can_be_pasted",),
    ),
]
