"""NeMo's rail library: topic safety, jailbreak detection, and NeMo's prompt surface
(tests/test_nemo_library.py, issue 14)."""

from tests.mutation_check import Mutation

T = "tests/test_nemo_library.py::"
TOPIC = T + "test_topic_safety_asks_its_model_as_nemo_does_and_on_topic_passes"
TOPIC_BLOCKS = T + "test_topic_safety_blocks_off_topic_and_what_it_cannot_read"
NIM = T + "test_jailbreak_detection_asks_the_nim_endpoint_with_its_key"
NO_VERDICT = T + "test_a_jailbreak_endpoint_that_gives_no_verdict_fails_closed"
MESSAGES = T + "test_a_message_list_prompt_is_sent_with_its_roles_and_nemos_variables"
PICKED = T + "test_the_prompt_for_the_judges_model_is_picked_as_nemo_picks_it"

MUTATIONS = [
    Mutation(
        name="topic safety: NeMo's on-topic/off-topic instruction not appended",
        path="stages/rails/_judges.py",
        old='                system = f"{system}\\n\\n{TOPIC_SAFETY_OUTPUT_RESTRICTION}"\n',
        new="                pass\n",
        tests=(TOPIC,),
    ),
    Mutation(
        name="topic safety: the conversation so far is not sent",
        path="stages/rails/_judges.py",
        old="        history = [dict(m) for m in context.history]\n",
        new="        history: list[dict[str, Any]] = []\n",
        tests=(TOPIC,),
    ),
    Mutation(
        name="topic safety: the facade passes no history",
        path="engine/runtime/_pipeline.py",
        old="                    history=tuple(plan.history),\n",
        new="",
        tests=(TOPIC,),
    ),
    Mutation(
        name="topic safety: an unreadable answer passes, as in NeMo",
        path="stages/rails/_judges.py",
        old='        allowed = verdict == "on-topic"\n',
        new='        allowed = verdict != "off-topic"\n',
        tests=(TOPIC_BLOCKS,),
    ),
    Mutation(
        name="topic safety: NeMo's temperature and max_tokens not sent",
        path="stages/rails/_judges.py",
        old='    default_parameters: ClassVar[Mapping[str, Any]] = {"temperature": 0.01, "max_tokens": 10}\n',
        new="",
        tests=(TOPIC,),
    ),
    Mutation(
        name="topic safety: $model optional",
        path="config_schema/_flows.py",
        old='_REQUIRED = {"topic safety check input": {"model"}}\n',
        new="_REQUIRED: dict[str, set[str]] = {}\n",
        tests=(T + "test_topic_safety_without_its_model_parameter_is_refused_at_load",),
    ),
    Mutation(
        name="jailbreak: the key from api_key_env_var is not sent",
        path="stages/rails/_jailbreak.py",
        old="            key = os.environ.get(settings.api_key_env_var)\n",
        new="            key = None\n",
        tests=(NIM,),
    ),
    Mutation(
        name="jailbreak: a verdict of true passes",
        path="stages/rails/_jailbreak.py",
        old="        if jailbreak:\n            return RailResult(allowed=False",
        new="        if False:\n            return RailResult(allowed=False",
        tests=(NIM,),
    ),
    Mutation(
        name="jailbreak: an error status is read as a verdict",
        path="stages/rails/_jailbreak.py",
        old="            if status != 200:\n",
        new="            if False:\n",
        tests=(NO_VERDICT,),
    ),
    Mutation(
        name="jailbreak: an answer without a verdict passes, as in NeMo",
        path="stages/rails/_jailbreak.py",
        old="    if not isinstance(verdict, bool):\n        raise JailbreakDetectionError(",
        new="    if not isinstance(verdict, bool):\n        return False\n        raise JailbreakDetectionError(",
        tests=(NO_VERDICT,),
    ),
    Mutation(
        name="jailbreak: the cut-off call is not logged",
        path="stages/rails/_jailbreak.py",
        old='            await record_anyway(context, self._record(window, watch, "cancelled", body))\n',
        new="",
        tests=(T + "test_a_stalled_jailbreak_endpoint_fails_closed_at_the_rails_timeout",),
    ),
    Mutation(
        name="jailbreak: loads without an endpoint",
        path="config_schema/_checks.py",
        old="    if not (settings.nim_base_url or settings.server_endpoint):\n",
        new="    if False:\n",
        tests=(T + "test_jailbreak_detection_without_an_endpoint_is_refused_at_load",),
    ),
    Mutation(
        name="prompts: a message list is sent as one user message",
        path="stages/rails/_judges.py",
        old="            [(m.role, m.content) for m in prompt.messages]\n",
        new='            [("user", m.content) for m in prompt.messages]\n',
        tests=(MESSAGES,),
    ),
    Mutation(
        name="prompts: NeMo's config variables not rendered",
        path="stages/rails/_judges.py",
        old='            {"role": role, "content": template.render(**self._variables, **values)}\n',
        new=(
            '            {"role": role, "content": template.render(**template_variables(None), '
            "**values)}\n"
        ),
        tests=(MESSAGES,),
    ),
    Mutation(
        name="prompts: the prompt is not picked by model",
        path="stages/rails/_builtin.py",
        old="    prompt = config.prompt(task, config.model(answering))\n",
        new="    prompt = config.prompt(task)\n",
        tests=(PICKED,),
    ),
    Mutation(
        name="prompts: engine and model no better than the model alone",
        path="config_schema/_models.py",
        old="            score = max(score, 1.0)\n",
        new="            score = max(score, 0.8)\n",
        tests=(PICKED,),
    ),
    Mutation(
        name="prompts: a prompt for other models can be picked",
        path="config_schema/_models.py",
        old="            if score > 0 and (best is None or score > best[0]):\n",
        new="            if best is None or score > best[0]:\n",
        tests=(PICKED, T + "test_prompts_only_for_other_models_are_refused_at_load"),
    ),
    Mutation(
        name="rails.config: an unsupported NeMo section is taken for an unknown key",
        path="config_schema/_nemo_compat.py",
        old='            "fact_checking",\n',
        new="",
        tests=(T + "test_rails_config_keys_are_read_ignored_or_refused_each_with_its_line",),
    ),
]
