"""Input rails (tests/test_input_rails.py): run on the user's message before the model is
asked, fail closed, and answer a block with the refusal (issue 14)."""

from tests.mutation_check import Mutation

T = "tests/test_input_rails.py::"
SPECULATE = T + "test_speculative_generation_asks_the_model_while_the_input_rail_runs_and_holds_it"
SPECULATIVE_BLOCK = T + "test_a_speculative_block_cancels_the_generation_and_releases_none_of_it"
BLOCK = T + "test_an_input_block_answers_the_refusal_and_never_asks_the_model"

MUTATIONS = [
    Mutation(
        name="input rails: never run",
        path="engine/runtime/_pipeline.py",
        old="                checked_first = plan.input_rails and not speculate\n",
        new="                checked_first = False\n",
        tests=(BLOCK, T + "test_an_input_rail_that_raises_fails_closed_and_the_model_is_not_asked"),
    ),
    Mutation(
        name="input rails: a block sends no refusal",
        path="engine/runtime/_pipeline.py",
        old="                await outbox.send(Released(plan.refusal))  # NeMo's answer to a blocked input\n",
        new="                pass\n",
        tests=(BLOCK,),
    ),
    Mutation(
        name="input rails: their runs are logged as output rails",
        path="engine/runtime/_pipeline.py",
        old='            side="input",\n',
        new="",
        tests=(BLOCK,),
    ),
    Mutation(
        name="input rails: the facade gives the pipeline none",
        path="engine/runtime/_plan.py",
        old='        input_rails = self.rails("input")\n',
        new="        input_rails: list[Rail] = []\n",
        tests=(BLOCK,),
    ),
    Mutation(
        name="input rails: check() resolves output flows only",
        path="engine/runtime/_plan.py",
        old="            for side in _SIDES\n",
        new='            for side in ("output",)\n',
        tests=(T + "test_an_input_flow_with_no_rail_is_named_with_its_file_and_line",),
    ),
    Mutation(
        name="input rails: rails.input.parallel ignored",
        path="engine/runtime/_pipeline.py",
        old="            parallel=plan.input_parallel,\n",
        new="            parallel=False,\n",
        tests=(T + "test_parallel_input_rails_the_first_block_cancels_the_others",),
    ),
    Mutation(
        name="input rails: per-flow timeouts ignored",
        path="engine/runtime/_pipeline.py",
        old="            timeouts=plan.input_rail_timeouts_s,\n",
        new="            timeouts={},\n",
        tests=(T + "test_an_input_rail_past_its_timeout_fails_closed",),
    ),
    Mutation(
        name="input rails: self check input is not a built-in",
        path="config_schema/_flows.py",
        old='    "self check input": ("self_check_input", None),\n',
        new="",
        tests=(T + "test_self_check_input_asks_its_judge_with_the_user_message",),
    ),
    Mutation(
        name="input rails: the loader does not ask self check input for its prompt",
        path="config_schema/_checks.py",
        old='    yield from _flow_problems(config, prompt_tasks, "input", inputs.flows)\n',
        new="",
        tests=(T + "test_self_check_input_without_its_prompt_is_refused_at_load",),
    ),
    Mutation(
        name="rails: the built-in wins over a registered action of its name",
        path="engine/runtime/_plan.py",
        old="        if action is not None:\n            return ActionRail(flow, action, side)\n        return self._builtin.get(flow)\n",
        new="        if flow not in self._builtin and action is not None:\n            return ActionRail(flow, action, side)\n        return self._builtin.get(flow)\n",
        tests=(T + "test_a_registered_action_with_a_builtins_name_replaces_the_builtin",),
    ),
    Mutation(
        name="speculative generation: the key is ignored (the model waits for the input rails)",
        path="engine/runtime/_plan.py",
        old="            speculative_generation=inputs.speculative_generation,\n",
        new="",
        tests=(SPECULATE,),
    ),
    Mutation(
        name="speculative generation: on by default",
        path="config_schema/_models.py",
        old="    speculative_generation: bool = False\n",
        new="    speculative_generation: bool = True\n",
        tests=(
            T + "test_without_speculative_generation_the_first_chunk_waits_for_rail_then_model",
        ),
    ),
    Mutation(
        name="speculative generation: a block does not cancel the generation",
        path="engine/runtime/_pipeline.py",
        old="                        stages.cancel_scope.cancel()\n                        return\n",
        new="                        return\n",
        tests=(SPECULATIVE_BLOCK,),
    ),
    Mutation(
        name="speculative generation: the other stages start before the input rails decide",
        path="engine/runtime/_pipeline.py",
        old="                    if speculate and not await self._input_passes(context, output_send):\n",
        new=(
            "                    stages.start_soon(run_buffering, tokens_recv, windows_send)\n"
            "                    tokens_recv = trio.open_memory_channel[GenerationEvent](0)[1]\n"
            "                    if speculate and not await self._input_passes(context, output_send):\n"
        ),
        tests=(SPECULATE,),
    ),
    Mutation(
        name="refusal: rails.refusal ignored for a streamed input block",
        path="engine/runtime/_plan.py",
        old="            refusal=self.config.rails.refusal,\n",
        new="",
        tests=(
            "tests/test_cli.py::test_an_input_block_shows_the_configs_refusal_and_the_chat_goes_on[streaming]",
        ),
    ),
    Mutation(
        name="refusal: rails.refusal ignored for a whole reply",
        path="engine/facade/_llmrails.py",
        old="            content = self._failed_reply(final, self.config.rails.refusal)\n",
        new="            content = self._failed_reply(final, BLOCKED_REPLY)\n",
        tests=(
            "tests/test_cli.py::test_an_input_block_shows_the_configs_refusal_and_the_chat_goes_on[whole]",
        ),
    ),
]
