"""NeMo-shaped config folders, the project's own and NeMo's published ones
(tests/test_nemo_corpus.py, issue 14's done test)."""

from tests.mutation_check import Mutation

T = "tests/test_nemo_corpus.py::"
RUNS = T + "test_a_folder_streams_clean_and_blocks_on_input_and_on_output"

MUTATIONS = [
    Mutation(
        name="corpus: Nemotron reasoning's verdict read inside its thinking",
        path="stages/rails/_parsers.py",
        old='    _, closed, after = answer.rpartition("</think>")\n',
        new='    closed, after = "</think>", answer\n',
        tests=(
            "tests/test_nemo_configs.py::"
            "test_each_output_parser_reads_its_models_answers_and_blocks_what_it_cannot_read",
        ),
    ),
    Mutation(
        name="corpus: rails.config.content_safety.reasoning not rendered",
        path="stages/rails/_judges.py",
        old='        "reasoning_enabled": config.rails.config.content_safety.reasoning.enabled,\n',
        new='        "reasoning_enabled": True,\n',
        tests=(RUNS + "[own/reasoning_judge]", RUNS + "[published/content_safety_reasoning]"),
    ),
    Mutation(
        name="corpus: rails.dialog refused again",
        path="config_schema/_nemo_compat.py",
        old='    ("rails", "dialog"): (\n',
        new='    ("rails", "dialog_"): (\n',
        tests=(RUNS + "[own/dialog_keys_ignored]", RUNS + "[published/test_output_rails]"),
    ),
    Mutation(
        name="corpus: jailbreak detection model not built in",
        path="stages/rails/_builtin.py",
        old='    if flow == "jailbreak detection model":\n',
        new='    if flow == "jailbreak detection model_":\n',
        tests=(RUNS + "[own/shields_on_nim]", RUNS + "[published/nemoguards_stream]"),
    ),
    Mutation(
        name="corpus: topic safety not built in",
        path="stages/rails/_builtin.py",
        old='    "topic safety check input": TopicSafetyCheckInput,\n',
        new="",
        tests=(RUNS + "[own/shields_on_nim]", RUNS + "[published/nemoguards]"),
    ),
]
