"""What a new user meets first (tests/test_new_user.py)."""

from tests.mutation_check import Mutation

_T = "tests/test_new_user.py"

MUTATIONS = [
    Mutation(
        name="new user: the README's real-model example streams a key before blocking it",
        path="examples/openai/config.yml",
        old="      stream_first: false\n",
        new="      stream_first: true\n",
        tests=(f"{_T}::test_the_readme_real_model_example_never_shows_a_key_it_blocks",),
    ),
    Mutation(
        name="new user: chat --verbose does not say that stream_first shows blocked text",
        path="engine/cli/_chat.py",
        old="    if args.verbose and notice is not None:\n",
        new="    if False:\n",
        tests=(f"{_T}::test_verbose_says_once_that_stream_first_shows_what_is_blocked",),
    ),
    Mutation(
        name="new user: the stream_first notice is given for a config that holds its text",
        path="config_schema/_stream_first.py",
        old="    if not (output.flows and output.streaming.enabled and output.streaming.stream_first):\n",
        new="    if not (output.flows and output.streaming.enabled):\n",
        tests=(f"{_T}::test_verbose_says_once_that_stream_first_shows_what_is_blocked",),
    ),
    Mutation(
        name="new user: each server worker repeats the stream_first warning",
        path="engine/cli/_serve.py",
        old="    if not args.reuse_port:  # said once: by the process that starts the workers, not each\n",
        new="    if True:\n",
        tests=(f"{_T}::test_the_server_says_once_at_start_which_configs_show_what_they_block",),
    ),
    Mutation(
        name="new user: the server's start-up log does not say that stream_first shows blocked text",
        path="engine/cli/_serve.py",
        old="            if notice is not None:\n",
        new="            if False:\n",
        tests=(f"{_T}::test_the_server_says_once_at_start_which_configs_show_what_they_block",),
    ),
    Mutation(
        name="new user: the README's stream_first does not say a blocked text was shown",
        path="README.md",
        old="                                # window is checked, so a text the rails block has already\n",
        new="                                # window is checked\n",
        tests=(
            f"{_T}::test_the_readme_says_where_stream_first_is_described_that_blocked_text_was_shown",
        ),
    ),
    Mutation(
        name="new user: a model's api_key_env_var naming an unset variable is not stopped at load",
        path="config_schema/_loader.py",
        old="    for path, problem in unset_key_variables(data, os.environ):\n",
        new="    for path, problem in ():\n",
        tests=(f"{_T}::test_a_key_variable_that_is_not_set_stops_the_start_saying_so",),
    ),
    Mutation(
        name="new user: jailbreak detection's api_key_env_var unset silently sends no key",
        path="config_schema/_env.py",
        old='            yield ("rails", "config", "jailbreak_detection", "api_key_env_var"), _unset(name)\n',
        new="            pass\n",
        tests=(f"{_T}::test_a_key_variable_that_is_not_set_stops_the_start_saying_so",),
    ),
    Mutation(
        name="new user: redaction turns an upstream's word after 'bearer' into Bearer ***",
        path="config_schema/_secrets.py",
        old='    if _WORD.fullmatch(match.group("token")):\n',
        new="    if False:\n",
        tests=(f"{_T}::test_an_upstream_error_keeps_its_words_and_loses_its_credentials",),
    ),
    Mutation(
        name="new user: redaction lets a bearer credential in an upstream's error through",
        path="config_schema/_secrets.py",
        old="        value = _BEARER.sub(_hide_bearer, value)\n",
        new="        pass\n",
        tests=(f"{_T}::test_an_upstream_error_keeps_its_words_and_loses_its_credentials",),
    ),
    Mutation(
        name="new user: chat --server-url .../v1 answers Not Found",
        path="engine/cli/_remote.py",
        old='        base = base.removesuffix("/v1")\n',
        new="",
        tests=(f"{_T}::test_chat_takes_the_server_url_as_an_openai_client_writes_it",),
    ),
    Mutation(
        name="new user: chat --server-url with a wrong path answers a bare Not Found",
        path="engine/cli/_remote.py",
        old='                        if response.status_code == 404 and _code(error) != "config_not_found":\n',
        new="                        if False:\n",
        tests=(f"{_T}::test_chat_takes_the_server_url_as_an_openai_client_writes_it",),
    ),
    Mutation(
        name="new user: a shutdown with nothing running warns that 0 streams were ended",
        path="engine/server/_run.py",
        old="            if shutdown.streams_ended or shutdown.requests_ended:\n",
        new="            if True:\n",
        tests=(f"{_T}::test_a_shutdown_with_nothing_running_warns_of_nothing",),
    ),
    Mutation(
        name="new user: an actions.py error from a relative folder loses its line",
        path="config_schema/_actions.py",
        old="            if Path(frame.filename).resolve() == resolved:\n",
        new="            if Path(frame.filename) == path:\n",
        tests=(f"{_T}::test_an_actions_file_that_fails_names_its_line_from_a_relative_folder",),
    ),
]
