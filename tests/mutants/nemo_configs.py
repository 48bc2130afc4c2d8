"""NeMo's published config folders (tests/test_nemo_configs.py): instructions, settings that
are ignored with a warning (issue 14)."""

from tests.mutation_check import Mutation

T = "tests/test_nemo_configs.py::"
CLEAN = T + "test_a_clean_reply_passes_input_and_output_rails_with_the_instructions_as_system"

MUTATIONS = [
    Mutation(
        name="nemo configs: instructions are not the main call's system message",
        path="engine/llmrails.py",
        old="        if self.config.instructions and generator is None:\n",
        new="        if False:\n",
        tests=(CLEAN,),
    ),
    Mutation(
        name="nemo configs: an ignored setting is ignored silently",
        path="config_schema/loader.py",
        old="        warnings.warn(str(setting), ConfigIgnoredWarning, stacklevel=4)\n",
        new="        pass\n",
        tests=(CLEAN,),
    ),
    Mutation(
        name="nemo configs: an input rail's action is given the reply's arguments",
        path="stages/rails/evaluator.py",
        old='        if self.side == "input":\n',
        new="        if False:\n",
        tests=(
            T + "test_a_message_self_check_input_blocks_is_refused_and_the_model_never_asked",
            "tests/test_input_rails.py::test_an_input_rail_checks_the_last_user_message_not_the_others",
        ),
    ),
    Mutation(
        name="nemo configs: engine nim is not the OpenAI-compatible provider",
        path="config_schema/loader.py",
        old="        if isinstance(engine, str) and engine in _OPENAI_COMPATIBLE:\n",
        new="        if False:\n",
        tests=(
            T + "test_nim_is_nvidias_openai_compatible_endpoint_with_nvidias_key_never_openais",
        ),
    ),
    Mutation(
        name="nemo configs: nim without NVIDIA_API_KEY sends OPENAI_API_KEY to NVIDIA",
        path="stages/generation/openai.py",
        old="        return None  # no key, said so (engine nim without NVIDIA_API_KEY): not OpenAI's\n",
        new="        pass\n",
        tests=(
            T + "test_nim_is_nvidias_openai_compatible_endpoint_with_nvidias_key_never_openais",
        ),
    ),
    Mutation(
        name="nemo configs: openai_api_base is not read as base_url",
        path="config_schema/loader.py",
        old="                    params[ours] = params.pop(nemo)\n",
        new="                    pass\n",
        tests=(T + "test_vllm_openai_with_nemos_spellings_reaches_its_server_by_name",),
    ),
]
