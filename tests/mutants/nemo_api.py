"""NeMo's Python API and server, call for call (tests/test_nemo_api.py, issue 15)."""

from tests.mutation_check import Mutation

T = "tests/test_nemo_api.py::"
SERVER = T + "test_the_server_takes_nemos_guardrails_object"
REFUSES = T + "test_the_server_refuses_what_it_does_not_do_with_a_400_saying_why"
LANGCHAIN = T + "test_a_langchain_chat_model_as_llm_streams_through_the_rails_from_trio"

# Not here: deleting the LangChain stream's explicit close() at a block. CPython closes the
# dropped generator as the provider returns, at the same moment, so no test can tell; the
# close stays for interpreters (and reference cycles) that would not.
MUTATIONS = [
    Mutation(
        name="nemo api: stream_async(generator=) without messages refused",
        path="engine/facade/_request.py",
        old="    if messages is None and prompt is None and generator is None:\n",
        new="    if messages is None and prompt is None:\n",
        tests=(T + "test_stream_async_with_only_a_generator_streams_it_through_the_output_rails",),
    ),
    Mutation(
        name="nemo api: a generator alone skips the input rails",
        path="engine/facade/_request.py",
        old="        if input_flows:\n",
        new="        if False:\n",
        tests=(
            T + "test_a_generator_without_messages_is_refused_when_input_rails_need_the_message",
        ),
    ),
    Mutation(
        name="nemo api: StreamingNotSupportedError is no ValueError",
        path="stages/_errors.py",
        old="class StreamingNotSupportedError(RailstreamError, ValueError):\n",
        new="class StreamingNotSupportedError(RailstreamError):\n",
        tests=(T + "test_streaming_not_supported_is_a_value_error_as_in_nemo",),
    ),
    Mutation(
        name="nemo api: generate(prompt=) returns a message",
        path="engine/facade/_llmrails.py",
        old="        reply: str | dict[str, Any] = content if prompt is not None else message\n",
        new="        reply: str | dict[str, Any] = message\n",
        tests=(T + "test_generate_with_a_prompt_returns_the_text_as_in_nemo",),
    ),
    Mutation(
        name="nemo api: the main call's completion is not logged",
        path="stages/generation/_stage.py",
        old="                completion=emit.completion(),\n",
        new="                completion=None,\n",
        tests=(
            T + "test_the_main_calls_prompt_and_completion_are_in_the_log",
            T + "test_a_cut_off_main_call_logs_what_it_said_so_far",
        ),
    ),
    Mutation(
        name="nemo api: the main call's prompt is not logged",
        path="stages/generation/_stage.py",
        old="                prompt=prompt_text(request.messages),\n",
        new="                prompt=None,\n",
        tests=(T + "test_the_main_calls_prompt_and_completion_are_in_the_log",),
    ),
    Mutation(
        name="nemo api: verbose does nothing",
        path="engine/facade/_llmrails.py",
        old="            _log_to_stderr()\n",
        new="            pass\n",
        tests=(T + "test_verbose_logs_each_llm_call_and_rail_run_to_stderr",),
    ),
    Mutation(
        name="nemo api: the finished call is not logged",
        path="engine/facade/_llmrails.py",
        old="        _log_finished(ledger)\n",
        new="        pass\n",
        tests=(T + "test_verbose_logs_each_llm_call_and_rail_run_to_stderr",),
    ),
    Mutation(
        name="nemo api: verbose adds a handler over the application's own",
        path="engine/facade/_llmrails.py",
        old="    if not logger.handlers:\n",
        new="    if True:\n",
        tests=(T + "test_verbose_leaves_an_applications_own_handler_alone",),
    ),
    Mutation(
        name="nemo api: explain() knows no call",
        path="engine/facade/_llmrails.py",
        old="        self._last_ledger = pipeline.ledger\n",
        new="",
        tests=(T + "test_explain_summarises_the_last_calls_llm_calls_as_nemo_does",),
    ),
    Mutation(
        name="nemo api: push_chunk takes anything",
        path="engine/facade/_streaming_handler.py",
        old="        if chunk is not None and not isinstance(chunk, str):\n",
        new="        if False:\n",
        tests=(T + "test_push_chunk_refuses_what_is_not_text",),
    ),
    Mutation(
        name="nemo api: set_pattern's suffix not held back",
        path="engine/facade/_streaming_handler.py",
        old="            text, self._held = text[: -len(self.suffix)], text[-len(self.suffix) :]\n",
        new="            pass\n",
        tests=(
            T + "test_set_pattern_removes_a_prefix_and_a_suffix_split_across_chunks",
            T + "test_generate_async_with_a_handler_flushes_what_the_suffix_held_back",
        ),
    ),
    Mutation(
        name="nemo api: generate_async does not end the handler's stream (the held text is lost)",
        path="engine/facade/_llmrails.py",
        old="                await streaming_handler.push_chunk(None)  # the end: what it held back goes on\n",
        new="                pass\n",
        tests=(T + "test_generate_async_with_a_handler_flushes_what_the_suffix_held_back",),
    ),
    Mutation(
        name="nemo api: set_pipe_to ignored",
        path="engine/facade/_streaming_handler.py",
        old="        if self.pipe_to is not None:\n            await self.pipe_to.push_chunk(text, generation_info)\n",
        new="        if False:\n            await self.pipe_to.push_chunk(text, generation_info)\n",
        tests=(T + "test_wait_returns_the_completion_and_a_piped_handler_gets_every_chunk",),
    ),
    Mutation(
        name="nemo api: a LangChain model is not adapted",
        path="engine/runtime/_plan.py",
        old="        return LangChainProvider(llm)\n",
        new="        return llm  # type: ignore[return-value]\n",
        tests=(LANGCHAIN,),
    ),
    Mutation(
        name="nemo api: a LangChain model's usage is dropped",
        path="stages/generation/_langchain.py",
        old='        return ProviderOutcome(finish_reason=summary.finish_reason or "stop", usage=summary.usage())\n',
        new='        return ProviderOutcome(finish_reason=summary.finish_reason or "stop")\n',
        tests=(LANGCHAIN,),
    ),
    Mutation(
        name="nemo api: llm=<anything> accepted",
        path="engine/runtime/_plan.py",
        old="    if missing:\n        raise TypeError(\n",
        new="    if False:\n        raise TypeError(\n",
        tests=(T + "test_an_llm_that_is_no_model_is_refused_at_construction",),
    ),
    Mutation(
        name="nemo api: output_vars' names ignored",
        path="engine/facade/_llmrails.py",
        old="    return {name: variables.get(name) for name in names}\n",
        new="    return variables\n",
        tests=(T + "test_output_vars_and_activated_rails_have_nemos_shapes",),
    ),
    Mutation(
        name="nemo api: options.rails taken for an unknown key",
        path="engine/facade/_generation_log.py",
        old='    "rails": (\n',
        new='    "rails_": (\n',
        tests=(T + "test_options_that_would_turn_rails_off_are_refused", REFUSES),
    ),
    Mutation(
        name="nemo api: context messages reach the model",
        path="engine/facade/_request.py",
        old='    checked = tuple(m for m in checked if m["role"] != "context")\n',
        new="",
        tests=(T + "test_a_context_message_reaches_the_actions_and_never_the_model",),
    ),
    Mutation(
        name="nemo api: context variables never reach an output action",
        path="stages/rails/_evaluator.py",
        old='                    **context.variables,\n                    "bot_message": text,\n',
        new='                    "bot_message": text,\n',
        tests=(T + "test_a_context_message_reaches_the_actions_and_never_the_model", SERVER),
    ),
    Mutation(
        name="nemo api: the server drops guardrails.context",
        path="engine/server/_wire.py",
        old='            messages = [{"role": "context", "content": context}, *messages]\n',
        new="            pass\n",
        tests=(SERVER,),
    ),
    Mutation(
        name="nemo api: the server's whole reply has no guardrails log",
        path="engine/server/_app.py",
        old='        if asked is not None and _wants_log(asked):\n            guardrails["log"]',
        new='        if False:\n            guardrails["log"]',
        tests=(SERVER,),
    ),
    Mutation(
        name="nemo api: the server combines configs silently (takes the first)",
        path="engine/server/_wire.py",
        old="        if len(config_ids) != 1:\n",
        new="        if False:\n",
        tests=(REFUSES,),
    ),
    Mutation(
        name="nemo api: the server ignores thread_id",
        path="engine/server/_wire.py",
        old="        if guardrails.get(key) is not None:\n",
        new="        if False:\n",
        tests=(REFUSES,),
    ),
    Mutation(
        name="nemo api: a streamed request's log silently not sent",
        path="engine/server/_app.py",
        old="        if asked is not None and (_wants_log(asked) or asked.output_vars):\n",
        new="        if False:\n",
        tests=(T + "test_a_streamed_request_takes_llm_params_but_refuses_a_log_it_would_not_send",),
    ),
    Mutation(
        name="nemo api: the main call's completion is kept whole, however long",
        path="stages/generation/_stage.py",
        old="        if len(text) > _KEPT_CHARS:\n",
        new="        if False:\n",
        tests=(T + "test_a_long_replys_completion_is_kept_to_the_logs_cap_whatever_its_length",),
    ),
]
