"""NeMo's published config folders (tests/test_nemo_configs.py): instructions, settings that
are ignored with a warning (issue 14)."""

from tests.mutation_check import Mutation

T = "tests/test_nemo_configs.py::"
CLEAN = T + "test_a_clean_reply_passes_input_and_output_rails_with_the_instructions_as_system"

MUTATIONS = [
    Mutation(
        name="nemo configs: instructions are not the main call's system message",
        path="engine/runtime/_plan.py",
        old="        if self.config.instructions and generator is None:\n",
        new="        if False:\n",
        tests=(CLEAN,),
    ),
    Mutation(
        name="nemo configs: an ignored setting is ignored silently",
        path="config_schema/_loader.py",
        old="        warnings.warn(str(setting), ConfigIgnoredWarning, stacklevel=4)\n",
        new="        pass\n",
        tests=(CLEAN,),
    ),
    Mutation(
        name="nemo configs: an input rail's action is given the reply's arguments",
        path="stages/rails/_evaluator.py",
        old='        if self.side == "input":\n',
        new="        if False:\n",
        tests=(
            T + "test_a_message_self_check_input_blocks_is_refused_and_the_model_never_asked",
            "tests/test_input_rails.py::test_an_input_rail_checks_the_last_user_message_not_the_others",
        ),
    ),
    Mutation(
        name="nemo configs: engine nim is not the OpenAI-compatible provider",
        path="config_schema/_nemo_compat.py",
        old="        if isinstance(engine, str) and engine in OPENAI_COMPATIBLE:\n",
        new="        if False:\n",
        tests=(
            T + "test_nim_is_nvidias_openai_compatible_endpoint_with_nvidias_key_never_openais",
        ),
    ),
    Mutation(
        name="nemo configs: nim without NVIDIA_API_KEY sends OPENAI_API_KEY to NVIDIA",
        path="stages/generation/_openai.py",
        old="        return None  # no key, said so (engine nim without NVIDIA_API_KEY): not OpenAI's\n",
        new="        pass\n",
        tests=(
            T + "test_nim_is_nvidias_openai_compatible_endpoint_with_nvidias_key_never_openais",
        ),
    ),
    Mutation(
        name="nemo configs: openai_api_base is not read as base_url",
        path="config_schema/_nemo_compat.py",
        old="                    params[ours] = params.pop(nemo)\n",
        new="                    pass\n",
        tests=(T + "test_vllm_openai_with_nemos_spellings_reaches_its_server_by_name",),
    ),
    Mutation(
        name="flows: $model is not read (the default model and task are used)",
        path="config_schema/_flows.py",
        old="    if model is not None:\n",
        new="    if False:\n",
        tests=(T + "test_content_safety_rails_ask_the_model_their_parameter_names",),
    ),
    Mutation(
        name="flows: NemoGuard's JSON verdicts read for the wrong side",
        path="stages/rails/_parsers.py",
        old='        verdict = verdicts.get("User Safety" if side == "input" else "Response Safety")\n',
        new='        verdict = verdicts.get("Response Safety" if side == "input" else "User Safety")\n',
        tests=(T + "test_content_safety_rails_ask_the_model_their_parameter_names",),
    ),
    Mutation(
        name="flows: a built-in on the wrong side is accepted",
        path="config_schema/_checks.py",
        old="        if not ref.name.endswith(side):\n",
        new="        if False:\n",
        tests=(T + "test_a_flow_that_cannot_be_read_is_refused_with_its_line",),
    ),
    Mutation(
        name="flows: llama guard check input is not a built-in",
        path="config_schema/_flows.py",
        old='    "llama guard check input": ("llama_guard_check_input", "llama_guard"),\n',
        new="",
        tests=(T + "test_the_llama_guard_folder_runs_its_guard_on_input_and_output",),
    ),
    Mutation(
        name="prompts: a safety prompt's output_parser is ignored",
        path="stages/rails/_judges.py",
        old="        if self._parser is not None:\n            allowed, categories = parse_with(self._parser, answer)\n",
        new="        if False:\n            allowed, categories = parse_with(self._parser, answer)\n",
        tests=(T + "test_the_content_safety_2024_folder_reads_each_guard_by_its_output_parser",),
    ),
    Mutation(
        name="prompts: a prompt's max_tokens is not sent",
        path="stages/rails/_judges.py",
        old='            self._call_parameters["max_tokens"] = prompt.max_tokens\n',
        new="            pass\n",
        tests=(T + "test_the_content_safety_2024_folder_reads_each_guard_by_its_output_parser",),
    ),
    Mutation(
        name="prompts: an unknown output_parser loads",
        path="config_schema/_checks.py",
        old="        if prompt.output_parser is not None and prompt.output_parser not in OUTPUT_PARSERS:\n",
        new="        if False:\n",
        tests=(T + "test_an_unknown_output_parser_is_refused_naming_the_known_ones",),
    ),
    Mutation(
        name="flows: a NeMo rail railstream lacks is taken for an action",
        path="config_schema/_checks.py",
        old="        if ref.name in NEMO_ONLY_RAILS and not ref.parameters:\n",
        new="        if False:\n",
        tests=(
            T + "test_a_nemo_rail_railstream_lacks_is_refused_at_load_unless_actions_py_serves_it",
        ),
    ),
    Mutation(
        name="flows: the loader asks for a built-in's prompt that actions.py replaces",
        path="config_schema/_checks.py",
        old='        if ref.name.replace(" ", "_") in config.actions:\n            continue  # the folder\'s own action serves it (actions.py)\n',
        new="",
        tests=(T + "test_an_actions_py_of_a_judges_name_needs_no_prompt_for_it",),
    ),
    Mutation(
        name="flows: the facade builds a built-in that actions.py replaces",
        path="engine/runtime/_plan.py",
        old="                continue  # actions.py serves it: no built-in (nor its prompt) is needed\n",
        new="                pass\n",
        tests=(T + "test_an_actions_py_of_a_judges_name_needs_no_prompt_for_it",),
    ),
]
