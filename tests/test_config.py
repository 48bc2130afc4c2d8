"""config.yml loading: strict shapes, every problem at once, each at its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from railstream import ConfigError, RailsConfig
from railstream.facade._llmrails import LLMRails

from .helpers import DEMO


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return str(exc.value).splitlines()


def test_the_demo_config_loads_with_its_action() -> None:
    config = RailsConfig.from_path(DEMO)
    assert config.rails.output.flows == ("check no secrets",)
    streaming = config.rails.output.streaming
    assert (
        streaming.enabled,
        streaming.chunk_size,
        streaming.context_size,
        streaming.stream_first,
    ) == (True, 8, 3, False)
    assert set(config.actions) == {"check_no_secrets"}
    assert config.model("main") is not None
    assert config.model("main").engine == "scripted"


def test_defaults_match_nemo() -> None:
    config = RailsConfig.from_content(yaml_content="rails: {output: {flows: []}}")
    streaming = config.rails.output.streaming
    assert (
        streaming.enabled,
        streaming.chunk_size,
        streaming.context_size,
        streaming.stream_first,
    ) == (False, 200, 50, True)
    assert config.streaming is False


BAD = """\
models:
  - type: main
    engin: scripted
  - type: 3
    engine: scripted
    parameters: {responses: [], delay_ms: -1, temperature: 0}
passthrough: true
rails:
  retrieval: {flows: [x]}
  output:
    flows: [self check output, check x, check x]
    streaming:
      enabled: yes
      chunk_size: 0
      bogus: 1
prompts:
  - task: other
    content: 1
"""


def test_every_shape_problem_is_reported_at_once_with_its_line() -> None:
    with pytest.raises(ConfigError) as exc:
        RailsConfig.from_content(yaml_content=BAD)
    assert problems(exc) == [
        "<yaml_content>:2: models[0].engine: required key is missing",
        "<yaml_content>:3: models[0].engin: unknown key",
        "<yaml_content>:4: models[1].type: expected a string, got an integer",
        "<yaml_content>:7: passthrough: is a NeMo Guardrails setting that railstream does not support",
        "<yaml_content>:9: rails.retrieval: is not supported: railstream applies input and output rails only",
        "<yaml_content>:13: rails.output.streaming.enabled: expected true or false, got a string",
        "<yaml_content>:15: rails.output.streaming.bogus: unknown key",
        "<yaml_content>:18: prompts[0].content: expected a string, got an integer",
    ]


def test_every_value_problem_is_reported_at_once_with_its_line() -> None:
    fixed = (
        BAD.replace("engin:", "engine:")
        .replace("type: 3", "type: judge")
        .replace("enabled: yes", "enabled: true")
    )
    fixed = (
        fixed.replace("      bogus: 1\n", "")
        .replace("content: 1", "content: c")
        .replace("passthrough: true\n", "")
    )
    fixed = fixed.replace("  retrieval: {flows: [x]}\n", "")
    with pytest.raises(ConfigError) as exc:
        RailsConfig.from_content(yaml_content=fixed)
    assert problems(exc) == [
        "<yaml_content>:2: models[0].parameters.responses: required for engine scripted: a list of replies",
        "<yaml_content>:6: models[1].parameters.temperature: unknown key (scripted takes responses, delay_ms, report_usage)",
        "<yaml_content>:6: models[1].parameters.responses: expected a non-empty list, got a list",
        "<yaml_content>:6: models[1].parameters.delay_ms: must be >= 0, got -1",
        "<yaml_content>:9: rails.output.flows[0]: flow 'self check output' needs a prompt with task 'self_check_output' in prompts",
        "<yaml_content>:9: rails.output.flows[2]: flow 'check x' is listed twice",
        "<yaml_content>:12: rails.output.streaming.chunk_size: must be >= 1, got 0",
    ]


@pytest.mark.parametrize(
    ("yaml", "expected"),
    [
        pytest.param(
            "rails: {output: {streaming: {chunk_size: 10, context_size: 10}}}",
            "<yaml_content>:1: rails.output.streaming.context_size: must be >= 0 and < chunk_size (10), got 10",
            id="context-not-below-chunk",
        ),
        pytest.param(
            "rails: {output: {streaming: {context_size: -1}}}",
            "<yaml_content>:1: rails.output.streaming.context_size: must be >= 0 and < chunk_size (200), got -1",
            id="negative-context",
        ),
        pytest.param(
            "rails:\n  output:\n    streaming:\n      chunk_size: '12'\n",
            "<yaml_content>:4: rails.output.streaming.chunk_size: expected an integer, got a string",
            id="no-guessing-strings-as-ints",
        ),
        pytest.param(
            "rails: {output: {streaming: {chunk_size: 12.5}}}",
            "<yaml_content>:1: rails.output.streaming.chunk_size: expected an integer, got a number",
            id="no-truncating-floats",
        ),
        pytest.param(
            "rails: {output: {flows: check no secrets}}",
            "<yaml_content>:1: rails.output.flows: expected a list, got a string",
            id="flows-as-string",
        ),
        pytest.param(
            "models:\n  - type: main\n    engine: nemo\n",
            "<yaml_content>:3: models[0].engine: unknown engine 'nemo' (supported: huggingface_pipeline, nim, openai, scripted, vllm_openai)",
            id="unknown-engine",
        ),
        pytest.param(
            "models:\n  - {type: main, engine: scripted, parameters: {responses: [a]}}\n  - {type: main, engine: scripted, parameters: {responses: [b]}}\n",
            "<yaml_content>:3: models[1].type: a model of type 'main' is already defined",
            id="duplicate-model",
        ),
        pytest.param(
            "rails: {output: {streaming: {max_concurrent_checks: 0}}}",
            "<yaml_content>:1: rails.output.streaming.max_concurrent_checks: must be >= 1, got 0",
            id="no-checks",
        ),
        pytest.param(
            "rails: {output: {streaming: {rail_timeout_s: 0}}}",
            "<yaml_content>:1: rails.output.streaming.rail_timeout_s: must be > 0 (or null for none), got 0.0",
            id="zero-timeout",
        ),
        pytest.param(
            "a: [1\n",
            "<yaml_content>:2: while parsing a flow sequence expected ',' or ']', but got '<stream end>'",
            id="yaml-syntax",
        ),
        pytest.param(
            "streaming: true\nstreaming: false\n",
            '<yaml_content>:2: while constructing a mapping found duplicate key "streaming" with value "False" (original value: "True")',
            id="duplicate-key",
        ),
        pytest.param(
            "- models\n",
            "<yaml_content>:1: expected a mapping at the top level, got a list",
            id="not-a-mapping",
        ),
        pytest.param(
            "actions: {}\n", "<yaml_content>:1: actions: unknown key", id="actions-is-not-yaml"
        ),
        pytest.param(
            "rails: {retrieval: {}, output: {apply_to_reasoning_traces: true}}\n",
            "<yaml_content>:1: rails.retrieval: is not supported: railstream applies input and output rails only\n"
            "<yaml_content>:1: rails.output.apply_to_reasoning_traces: is not supported by railstream",
            id="nemo-only",
        ),
    ],
)
def test_single_problems_are_pinned(yaml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        RailsConfig.from_content(yaml_content=yaml)
    assert str(exc.value) == expected


def test_config_error_is_a_value_error_with_structured_problems() -> None:
    with pytest.raises(ValueError, match=r"^<yaml_content>:1: bogus: unknown key$") as exc:
        RailsConfig.from_content(yaml_content="bogus: 1")
    assert isinstance(exc.value, ConfigError)
    (problem,) = exc.value.problems
    assert (problem.file, problem.line, problem.path, problem.problem) == (
        "<yaml_content>",
        1,
        "bogus",
        "unknown key",
    )


def test_colang_content_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"^<colang_content>: Colang is not supported by railstream$"
    ):
        RailsConfig.from_content(yaml_content="", colang_content="define flow x")


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


SCRIPTED = "models:\n  - type: main\n    engine: scripted\n    parameters: {responses: [hi]}\n"


def test_prompts_yml_is_merged_and_its_problems_point_into_it(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "c",
        {
            "config.yml": SCRIPTED
            + "rails:\n  output:\n    flows: [self check output]\n    streaming: {enabled: true}\n",
            "prompts.yml": "prompts:\n  - task: self_check_output\n    content: 'Block? {{ bot_response }}'\n",
        },
    )
    config = RailsConfig.from_path(folder)
    assert config.prompt("self_check_output") is not None

    (folder / "prompts.yml").write_text(
        "prompts:\n  - task: self_check_output\n    content: ok\n    mode: chat\n  - task: self_check_output\n    content: again\n"
    )
    with pytest.raises(ConfigError) as exc:
        RailsConfig.from_path(folder)
    assert problems(exc) == [
        f"{folder}/prompts.yml:4: prompts[0].mode: is not supported by railstream (use task and content)",
        f"{folder}/prompts.yml:5: prompts[1].task: a prompt for task 'self_check_output' is already defined",
    ]


def test_colang_and_stray_yaml_files_are_refused_not_ignored(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "c", {"config.yml": SCRIPTED, "rails.co": "define flow x", "more.yml": "a: 1"}
    )
    with pytest.raises(ConfigError) as exc:
        RailsConfig.from_path(folder)
    assert problems(exc) == [
        f"{folder}/more.yml: not read by railstream: move its settings into config.yml or prompts.yml",
        f"{folder}/rails.co: Colang files are not supported by railstream",
    ]


def test_missing_folder_and_missing_config_yml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such config folder or file$"):
        RailsConfig.from_path(tmp_path / "nope")
    with pytest.raises(ConfigError, match=r": no config\.yml in this folder$"):
        RailsConfig.from_path(write(tmp_path / "empty", {}))


def test_actions_py_errors_name_file_and_line(tmp_path: Path) -> None:
    folder = write(tmp_path / "c", {"config.yml": SCRIPTED, "actions.py": "import re\n\nx = 1 +\n"})
    with pytest.raises(
        ConfigError, match=rf"^{folder}/actions\.py:3: syntax error: invalid syntax$"
    ):
        RailsConfig.from_path(folder)
    (folder / "actions.py").write_text("import re\n\nraise RuntimeError('no key file')\n")
    with pytest.raises(
        ConfigError,
        match=rf"^{folder}/actions\.py:3: error while importing: RuntimeError: no key file$",
    ):
        RailsConfig.from_path(folder)


def test_actions_py_registers_marked_functions_under_their_names(tmp_path: Path) -> None:
    folder = write(
        tmp_path / "c",
        {
            "config.yml": SCRIPTED,
            "actions.py": (
                "from railstream import action\n\n"
                "@action()\ndef plain(bot_message): return True\n\n"
                "@action(name='renamed')\nasync def other(bot_message): return True\n\n"
                "def helper(): pass\n"
            ),
        },
    )
    config = RailsConfig.from_path(folder)
    assert sorted(config.actions) == ["plain", "renamed"]
    LLMRails(config)  # they register cleanly


def test_a_self_check_prompt_with_unknown_variables_is_refused_at_construction(
    tmp_path: Path,
) -> None:
    yaml = SCRIPTED + (
        "rails: {output: {flows: [self check output], streaming: {enabled: true}}}\n"
        "prompts: [{task: self_check_output, content: 'Block? {{ bot_respons }}'}]\n"
    )
    config = RailsConfig.from_content(yaml_content=yaml)
    with pytest.raises(
        ValueError,
        match=(
            r"uses bot_respons; it may use only \{\{ bot_response \}\}, \{\{ config \}\}, "
            r"\{\{ general_instructions \}\}, \{\{ reasoning_enabled \}\}, \{\{ user_input \}\}$"
        ),
    ):
        LLMRails(config)


def test_shape_and_cross_field_problems_are_reported_together() -> None:
    yaml = (
        "rails:\n  output:\n    streaming:\n      chunk_size: 8\n      context_size: 8\n"
        "      stream_frist: false\n    flows: [check x, check x]\n"
    )
    with pytest.raises(ConfigError) as exc:
        RailsConfig.from_content(yaml_content=yaml)
    assert problems(exc) == [
        "<yaml_content>:5: rails.output.streaming.context_size: must be >= 0 and < chunk_size (8), got 8",
        "<yaml_content>:6: rails.output.streaming.stream_frist: unknown key",
        "<yaml_content>:7: rails.output.flows[1]: flow 'check x' is listed twice",
    ]


def test_a_rule_next_to_a_wrong_typed_value_is_not_judged_against_a_default() -> None:
    # chunk_size is unusable, so context_size cannot be judged against it (nor its default).
    yaml = "rails: {output: {streaming: {chunk_size: big, context_size: 300}}}"
    with pytest.raises(ConfigError) as exc:
        RailsConfig.from_content(yaml_content=yaml)
    assert problems(exc) == [
        "<yaml_content>:1: rails.output.streaming.chunk_size: expected an integer, got a string"
    ]
