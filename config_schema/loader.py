"""Reading config folders and YAML text into :class:`RailsConfig`, with every problem located.

The YAML is read with ruamel's round-trip loader so each node keeps its line; cattrs then
structures plain data, and each problem it (or a cross-field check) finds is placed back at
the line of the key it concerns: ``config.yml:12: rails.output.streaming.chunk_size: ...``.
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path as FsPath
from typing import Any

import attrs
from cattrs.errors import BaseValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .actions import load_actions_file
from .converter import Path, make_converter, structure_problems, type_name
from .engines import SUPPORTED_ENGINES, engine_parameter_problems
from .errors import ConfigError, ConfigIgnoredWarning, ConfigProblem
from .flows import (
    HTTP_RAILS,
    NEMO_ONLY_RAILS,
    OUTPUT_PARSERS,
    builtin_judge,
    nemo_only_problem,
    parse_flow,
)
from .models import RailsConfig

__all__ = ["load_content", "load_path", "locate"]

_CONVERTER = make_converter()

CONFIG_NAMES = ("config.yml", "config.yaml")
PROMPTS_NAMES = ("prompts.yml", "prompts.yaml")

# NeMo Guardrails settings that railstream does not implement. Ignoring one could drop a rail
# the user relies on, so each is an error that says so. "*" stands for any list index.
_NOT_SUPPORTED: dict[tuple[str, ...], str] = {
    **{
        (key,): "is a NeMo Guardrails setting that railstream does not support"
        for key in (
            "core",
            "passthrough",
            "custom_data",
            "knowledge_base",
            "actions_server_url",
            "import_paths",
            "user_messages",
            "bot_messages",
            "flows",
            "enable_rails_exceptions",
            "raw_llm_call_action",
        )
    },
    **{
        ("rails", key): "is not supported: railstream applies input and output rails only"
        for key in (
            "retrieval",
            "tool_input",
            "tool_output",
            "actions",
        )
    },
    # The settings of NeMo's rails railstream does not have (rails.config holds those of
    # jailbreak detection and content safety, which it has).
    **{
        ("rails", "config", key): f"configures NeMo's {key} rails, which railstream does not have"
        for key in (
            "fact_checking",
            "autoalign",
            "patronus",
            "sensitive_data_detection",
            "injection_detection",
            "privateai",
            "fiddler",
            "clavata",
            "pangea",
            "trend_micro",
            "ai_defense",
            "guardrails_ai",
            "gcp_moderate_text",
            "cleanlab",
            "topic_safety",
        )
    },
    **{
        ("rails", "config", "jailbreak_detection", key): (
            "is NeMo's older spelling, which railstream does not read: write nim_base_url "
            "(such as http://host:8000/v1) and nim_server_endpoint (classify)"
        )
        for key in ("nim_url", "nim_port")
    },
    ("rails", "output", "apply_to_reasoning_traces"): "is not supported by railstream",
    **{
        ("models", "*", key): "is not supported by railstream"
        for key in ("mode", "reasoning_config", "cache")
    },
    **{
        ("prompts", "*", key): "is not supported by railstream (use task and content)"
        for key in (
            "max_length",
            "mode",
        )
    },
}

# NeMo Guardrails settings that tune only what railstream does not have: accepted, ignored,
# with one warning each (ConfigIgnoredWarning). None of them defines or changes a rail.
_IGNORED: dict[tuple[str, ...], str] = {
    (
        "sample_conversation",
    ): "it shapes the prompts of NeMo's dialog rails, which railstream does not have",
    ("colang_version",): "railstream runs no Colang (Colang files are refused)",
    (
        "lowest_temperature",
    ): "it is the temperature of NeMo's dialog-rail calls, which railstream does not make",
    (
        "enable_multi_step_generation",
    ): "it changes NeMo's dialog generation, which railstream does not have",
    (
        "embedding_search_provider",
    ): "it serves NeMo's dialog and retrieval rails, which railstream does not have",
    **{
        ("tracing", key): (
            "railstream's OpenTelemetry spans go to the application's tracer provider "
            "(tracing.enabled turns them on or off); NeMo's adapters and span options are "
            "not read"
        )
        for key in ("adapters", "span_format", "enable_content_capture")
    },
    ("rails", "dialog"): (
        "it tunes NeMo's dialog rails, which Colang defines (refused here): railstream has "
        "none for it to tune"
    ),
    **{
        ("rails", "config", "jailbreak_detection", key): (
            "it tunes NeMo's jailbreak detection heuristics and in-process model, which "
            "railstream does not run (jailbreak detection model asks an endpoint)"
        )
        for key in (
            "length_per_perplexity_threshold",
            "prefix_suffix_perplexity_threshold",
            "embedding",
        )
    },
}


@attrs.frozen
class _Document:
    """One YAML file as read: its name for messages, and its node tree for line numbers."""

    file: str
    root: Any

    def line(self, path: Path) -> int | None:
        """The line of the deepest node along ``path`` that exists (1-based)."""
        node, line = self.root, None
        for key in path:
            if isinstance(node, CommentedMap) and key in node:
                line = node.lc.key(key)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
                line = node.lc.item(key)[0] + 1
            else:
                break
            node = node[key]
        return line if line is not None else (1 if path else None)


def _format_path(path: Path) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _plain(node: Any) -> Any:
    """Plain Python data from ruamel's round-trip nodes (which subclass int, float, str)."""
    if isinstance(node, Mapping):
        return {str(k) if isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    for kind in (bool, int, float, str):
        if isinstance(node, kind):
            return kind(node)
    return node


def _parse(text: str, file: str) -> _Document:
    try:
        root = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise ConfigError([ConfigProblem(file=file, line=line, path="", problem=problem)]) from None
    except YAMLError as exc:
        raise ConfigError(
            [ConfigProblem(file=file, line=None, path="", problem=str(exc))]
        ) from None
    if root is None:
        root = CommentedMap()
    if not isinstance(root, CommentedMap):
        problem = f"expected a mapping at the top level, got {type_name(_plain(root))}"
        raise ConfigError([ConfigProblem(file=file, line=1, path="", problem=problem)])
    return _Document(file=file, root=root)


def _pop_not_supported(data: Any, pattern: tuple[str, ...], path: Path = ()) -> Iterator[Path]:
    """Remove the keys matching ``pattern`` from ``data``, yielding where each one was."""
    head, *rest = pattern
    if head == "*":
        if isinstance(data, list):
            for i, item in enumerate(data):
                yield from _pop_not_supported(item, tuple(rest), (*path, i))
    elif isinstance(data, dict) and head in data:
        if rest:
            yield from _pop_not_supported(data[head], tuple(rest), (*path, head))
        else:
            del data[head]
            yield (*path, head)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """``text`` with its ``${VAR}`` references expanded, and the names that were not set."""
    missing: list[str] = []

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    return _ENV_REF.sub(one, text), missing


def _interpolate(value: Any, path: Path, environ: Mapping[str, str]) -> Iterator[tuple[Path, str]]:
    """Expand ``${VAR}`` / ``${VAR:-default}`` in place in the strings under ``value``."""
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in list(items):
        if isinstance(item, str) and "${" in item:
            expanded, missing = _expand(item, environ)
            if not missing:  # else keep the reference, so no second error follows from a blank
                value[key] = expanded
            for name in missing:
                yield (
                    (*path, key),
                    f"environment variable {name} is not set (write ${{{name}:-default}} for a default)",
                )
        elif isinstance(item, dict | list):
            yield from _interpolate(item, (*path, key), environ)


def _drop(data: Any, path: Path) -> bool:
    """Delete the value at ``path`` if it is there; True if something was deleted."""
    for key in path[:-1]:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return False
    if path and isinstance(data, dict) and path[-1] in data:
        del data[path[-1]]
        return True
    return False


# NeMo's engines that are OpenAI-compatible servers, and the URL each defaults to.
_OPENAI_COMPATIBLE: dict[str, str | None] = {
    "nim": "https://integrate.api.nvidia.com/v1",  # NVIDIA's hosted endpoint
    "vllm_openai": None,  # a vLLM server of your own: its URL is required
}
# NeMo's (LangChain's) spellings of the OpenAI provider's parameters.
_NEMO_SPELLINGS = {"openai_api_base": "base_url", "openai_api_key": "api_key"}


def _nemo_models(data: Any, nemo_engines: dict[int, str]) -> Iterator[tuple[Path, str]]:
    """Rewrite NeMo's ways of writing a model into railstream's, in place (README, "Coming
    from NeMo Guardrails"): engines ``nim`` and ``vllm_openai`` are ``openai`` with their own
    defaults; ``openai_api_base`` is ``base_url``; the model's name may be ``model`` or
    ``model_name`` in ``parameters``. Yields what cannot be rewritten; ``nemo_engines`` gets
    each rewritten model's engine as NeMo wrote it, by index."""
    models = data.get("models") if isinstance(data, dict) else None
    for i, model in enumerate(models if isinstance(models, list) else []):
        if not isinstance(model, dict) or not isinstance(model.get("parameters", {}), dict):
            continue
        params = model.setdefault("parameters", {})
        for nemo, ours in _NEMO_SPELLINGS.items():
            if nemo in params:
                if ours in params:
                    yield ("models", i, "parameters", nemo), f"set {ours} or {nemo}, not both"
                else:
                    params[ours] = params.pop(nemo)
        for key in ("model_name", "model"):
            if key in params:
                name = params.pop(key)
                if model.get("model") not in (None, name):
                    yield (
                        ("models", i, "parameters", key),
                        f"names the model {name!r}, and models[{i}].model {model['model']!r}: "
                        "name it once",
                    )
                else:
                    model["model"] = name
        engine = model.get("engine")
        if isinstance(engine, str) and engine in _OPENAI_COMPATIBLE:
            model["engine"] = "openai"
            nemo_engines[i] = engine
            default = _OPENAI_COMPATIBLE[engine]
            if "base_url" not in params:
                if default is None:
                    yield (
                        ("models", i, "engine"),
                        f"engine {engine} needs its server's URL: parameters.base_url "
                        "(or openai_api_base), such as http://127.0.0.1:8000/v1",
                    )
                else:
                    params["base_url"] = default
            if engine == "nim" and "api_key" not in params and not model.get("api_key_env_var"):
                # NVIDIA's key, never OPENAI_API_KEY (which would be sent to NVIDIA); None
                # when it is not set: no key.
                params["api_key"] = os.environ.get("NVIDIA_API_KEY")
        if not params:
            del model["parameters"]


def _not_supported_problems(data: Any) -> Iterator[tuple[Path, str]]:
    for pattern, message in _NOT_SUPPORTED.items():
        for path in _pop_not_supported(data, pattern):
            yield path, message


def _timeout_problems(
    base: Path,
    default: float | None,
    per_flow: Mapping[str, float],
    flows: Sequence[str],
    side: str,
) -> Iterator[tuple[Path, str]]:
    """``rail_timeout_s`` and ``rail_timeouts_s`` of one side's rails."""
    if default is not None and default <= 0:
        yield (*base, "rail_timeout_s"), f"must be > 0 (or null for none), got {default}"
    for flow, seconds in per_flow.items():
        if flow not in flows:
            yield (*base, "rail_timeouts_s", flow), f"{flow!r} is not one of rails.{side}.flows"
        elif seconds <= 0:
            yield (*base, "rail_timeouts_s", flow), f"must be > 0, got {seconds}"


def _flow_problems(
    config: RailsConfig, prompt_tasks: list[str], side: str, flows: Sequence[str]
) -> Iterator[tuple[Path, str]]:
    """One side's flows: named, listed once, with the prompt and model a built-in needs."""
    seen: set[str] = set()
    for i, flow in enumerate(flows):
        where = ("rails", side, "flows", i)
        if not flow.strip():
            yield where, "a flow name must not be empty"
        elif flow in seen:
            yield where, f"flow {flow!r} is listed twice"
        seen.add(flow)
        try:
            ref = parse_flow(flow)
        except ValueError as exc:
            yield where, str(exc)
            continue
        if ref.name.replace(" ", "_") in config.actions:
            continue  # the folder's own action serves it (actions.py)
        if ref.name in NEMO_ONLY_RAILS and not ref.parameters:
            yield where, nemo_only_problem(ref.name)
            continue
        if ref.name in HTTP_RAILS:
            yield from _http_rail_problems(config, ref.name, side, where)
            continue
        judge = builtin_judge(ref)
        if judge is None:
            continue
        task, model_type = judge
        if not ref.name.endswith(side):
            yield where, f"{ref.name!r} is an {ref.name.rsplit(' ', 1)[-1]} rail, not an {side} one"
        model = (
            config.model(model_type)
            if model_type is not None
            else config.model(task) or config.model("main")
        )
        if task not in prompt_tasks:
            yield where, f"flow {flow!r} needs a prompt with task {task!r} in prompts"
        elif config.prompt(task, model) is None:
            named = (
                f"{(*model.nemo_engines, model.engine)[0]}/{model.model}"
                if model is not None
                else "no model"
            )
            yield (
                where,
                f"flow {flow!r}: no prompt for task {task!r} is for its model ({named}): "
                "each names other models",
            )
        if model_type is not None and model is None:
            yield where, f"flow {flow!r} needs a model of type {model_type!r} in models"


def _http_rail_problems(
    config: RailsConfig, name: str, side: str, where: Path
) -> Iterator[tuple[Path, str]]:
    """A built-in that asks an endpoint: on its side, with the endpoint configured."""
    if HTTP_RAILS[name] != side:
        yield where, f"{name!r} is an {HTTP_RAILS[name]} rail, not an {side} one"
    settings = config.rails.config.jailbreak_detection
    if not (settings.nim_base_url or settings.server_endpoint):
        yield (
            where,
            f"flow {name!r} needs rails.config.jailbreak_detection.nim_base_url (NemoGuard "
            "JailbreakDetect) or .server_endpoint (NeMo's jailbreak detection server): "
            "railstream does not run NeMo's in-process model",
        )


def _semantic_problems(config: RailsConfig, prompt_tasks: list[str]) -> Iterator[tuple[Path, str]]:
    """Rules that span fields, checked once the config has its shape."""
    seen_types: set[str] = set()
    for i, model in enumerate(config.models):
        if model.type in seen_types:
            yield ("models", i, "type"), f"a model of type {model.type!r} is already defined"
        seen_types.add(model.type)
        if model.engine not in SUPPORTED_ENGINES:
            supported = ", ".join(sorted((*SUPPORTED_ENGINES, *_OPENAI_COMPATIBLE)))
            yield (
                ("models", i, "engine"),
                f"unknown engine {model.engine!r} (supported: {supported})",
            )
        for sub, problem in engine_parameter_problems(model.engine, model.parameters):
            yield ("models", i, "parameters", *sub), problem
        if model.engine == "huggingface_pipeline" and not model.model:
            yield (
                ("models", i, "model"),
                "required for engine huggingface_pipeline: a local model path",
            )
        if model.engine == "openai" and not model.model:
            yield (
                ("models", i, "model"),
                "required for engine openai: the model name the server serves",
            )

    for i, instruction in enumerate(config.instructions):
        if instruction.type != "general":
            yield (
                ("instructions", i, "type"),
                f"unknown instruction type {instruction.type!r} (the one NeMo defines is general)",
            )

    policy = config.request_parameters
    for name in policy.max:
        if policy.allow is not None and name not in policy.allow:
            yield (
                ("request_parameters", "max", name),
                "is not in request_parameters.allow: a bound on a parameter no request may set",
            )

    output = config.rails.output
    streaming = output.streaming
    base = ("rails", "output", "streaming")
    if streaming.chunk_size < 1:
        yield (*base, "chunk_size"), f"must be >= 1, got {streaming.chunk_size}"
    elif not 0 <= streaming.context_size < streaming.chunk_size:
        yield (
            (*base, "context_size"),
            (
                f"must be >= 0 and < chunk_size ({streaming.chunk_size}), got {streaming.context_size}"
            ),
        )
    if streaming.max_concurrent_checks < 1:
        yield (
            (*base, "max_concurrent_checks"),
            f"must be >= 1, got {streaming.max_concurrent_checks}",
        )

    yield from _timeout_problems(
        base, streaming.rail_timeout_s, streaming.rail_timeouts_s, output.flows, "output"
    )
    inputs = config.rails.input
    yield from _timeout_problems(
        ("rails", "input"), inputs.rail_timeout_s, inputs.rail_timeouts_s, inputs.flows, "input"
    )
    yield from _flow_problems(config, prompt_tasks, "input", inputs.flows)
    blocklist = output.blocklist
    for j, pattern in enumerate(blocklist.patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            yield (
                ("rails", "output", "blocklist", "patterns", j),
                f"not a valid regular expression: {exc}",
            )
    for j, word in enumerate(blocklist.words):
        if not word.strip():
            yield ("rails", "output", "blocklist", "words", j), "a blocked word must not be empty"

    yield from _flow_problems(config, prompt_tasks, "output", output.flows)
    for i, flow in enumerate(output.flows):
        if flow == "blocklist check output" and not (
            output.blocklist.words or output.blocklist.patterns
        ):
            yield (
                ("rails", "output", "flows", i),
                "flow 'blocklist check output' needs rails.output.blocklist words or patterns",
            )

    for i, prompt in enumerate(config.prompts):
        if prompt.output_parser is not None and prompt.output_parser not in OUTPUT_PARSERS:
            yield (
                ("prompts", i, "output_parser"),
                f"unknown output parser {prompt.output_parser!r} "
                f"(railstream reads {', '.join(sorted(OUTPUT_PARSERS))})",
            )
        if prompt.max_tokens is not None and prompt.max_tokens < 1:
            yield ("prompts", i, "max_tokens"), f"must be >= 1, got {prompt.max_tokens}"
        if (prompt.content is None) == (prompt.messages is None):
            yield ("prompts", i), "give the prompt as content or as messages (one of the two)"
        for j, message in enumerate(prompt.messages or ()):
            if message.type not in _PROMPT_MESSAGE_TYPES:
                yield (
                    ("prompts", i, "messages", j, "type"),
                    f"unknown message type {message.type!r} (NeMo's are system, user, "
                    "assistant and bot)",
                )
        if prompt.models is not None and not prompt.models:
            yield ("prompts", i, "models"), "must name at least one model (or be left out)"

    # Several prompts may serve one task for different models; the same task for the same
    # models twice is a mistake (the second could never be picked).
    seen_tasks: set[tuple[str, tuple[str, ...] | None]] = set()
    for i, prompt in enumerate(config.prompts):
        key = (prompt.task, prompt.models)
        if key in seen_tasks:
            for_models = f" for models {list(prompt.models)}" if prompt.models else ""
            yield (
                ("prompts", i, "task"),
                f"a prompt for task {prompt.task!r}{for_models} is already defined",
            )
        seen_tasks.add(key)


_PROMPT_MESSAGE_TYPES = frozenset({"system", "user", "assistant", "bot"})


def _build(
    config_doc: _Document,
    prompts_doc: _Document | None,
    *,
    actions: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> RailsConfig:
    problems: list[ConfigProblem] = []

    def report(doc: _Document, path: Path, problem: str) -> None:
        problems.append(
            ConfigProblem(
                file=doc.file, line=doc.line(path), path=_format_path(path), problem=problem
            )
        )

    data = _plain(config_doc.root)
    for path, problem in _not_supported_problems(data):
        report(config_doc, path, problem)
    nemo_engines: dict[int, str] = {}
    for path, problem in _nemo_models(data, nemo_engines):
        report(config_doc, path, problem)
    ignored = [
        ConfigProblem(
            file=config_doc.file,
            line=config_doc.line(path),
            path=_format_path(path),
            problem=f"ignored: {why}",
        )
        for pattern, why in _IGNORED.items()
        for path in _pop_not_supported(data, pattern)
    ]
    # Endpoints and model names often come from the environment (one config, many deployments).
    if isinstance(data.get("models"), list):
        for path, problem in _interpolate(data["models"], ("models",), os.environ):
            report(config_doc, path, problem)

    # Prompts from prompts.yml are appended to config.yml's; remember where each one came from.
    prompt_origin: list[tuple[_Document, int]] = [
        (config_doc, i)
        for i in range(len(data["prompts"]) if isinstance(data.get("prompts"), list) else 0)
    ]
    if prompts_doc is not None:
        extra = _plain(prompts_doc.root)
        for path, problem in _not_supported_problems(extra):
            report(prompts_doc, path, problem)
        for key in extra:
            if key != "prompts":
                report(prompts_doc, (key,), "unknown key (prompts.yml holds only prompts)")
        more = extra.get("prompts", [])
        if not isinstance(more, list):
            report(prompts_doc, ("prompts",), f"expected a list, got {type_name(more)}")
        elif isinstance(data.get("prompts", []), list):
            prompt_origin += [(prompts_doc, i) for i in range(len(more))]
            data["prompts"] = [*data.get("prompts", []), *more]

    def locate(path: Path, problem: str) -> None:
        if (
            len(path) >= 2
            and path[0] == "prompts"
            and isinstance(path[1], int)
            and path[1] < len(prompt_origin)
        ):
            doc, index = prompt_origin[path[1]]
            report(doc, ("prompts", index, *path[2:]), problem)
        else:
            report(config_doc, path, problem)

    config: RailsConfig | None = None
    # Mappings where a wrong-typed value was dropped: their other rules would see a default.
    unreliable: set[Path] = set()
    try:
        config = _CONVERTER.structure(data, RailsConfig)
    except BaseValidationError as exc:
        shape_problems = list(structure_problems(exc))
        for path, problem in shape_problems:
            locate(path, problem)
        # Report the cross-field problems too, in one pass: check what is left once the
        # keys in error are dropped.
        pruned = copy.deepcopy(data)
        for path, problem in shape_problems:
            if _drop(pruned, path) and problem != "unknown key":
                unreliable.add(path[:-1])
        try:
            config = _CONVERTER.structure(pruned, RailsConfig)
        except BaseValidationError:
            config = None
    if config is not None and nemo_engines:
        models = tuple(
            attrs.evolve(m, nemo_engines=(nemo_engines[i],)) if i in nemo_engines else m
            for i, m in enumerate(config.models)
        )
        config = attrs.evolve(config, models=models)
    if config is not None:
        tasks = [p.task for p in config.prompts]
        # With the folder's actions: an action of a built-in's name replaces that built-in.
        for path, problem in _semantic_problems(
            attrs.evolve(config, actions=dict(actions or {})), tasks
        ):
            if path[:-1] not in unreliable:
                locate(path, problem)
        if problems:
            config = None
    if problems:
        problems.sort(key=lambda p: (p.file != config_doc.file, p.file, p.line or 0))
        raise ConfigError(dict.fromkeys(problems))
    assert config is not None
    for setting in ignored:  # only for a config that loads: an error says more than these
        warnings.warn(str(setting), ConfigIgnoredWarning, stacklevel=4)
    return attrs.evolve(config, actions=dict(actions or {}), source=source)


def load_content(
    yaml_content: str, *, prompts_content: str | None = None, colang_content: str | None = None
) -> RailsConfig:
    """Load a config from the text of a config.yml (and optionally of a prompts.yml)."""
    if colang_content:
        raise ConfigError(
            [
                ConfigProblem(
                    file="<colang_content>",
                    line=None,
                    path="",
                    problem="Colang is not supported by railstream",
                )
            ]
        )
    config_doc = _parse(yaml_content, "<yaml_content>")
    prompts_doc = _parse(prompts_content, "<prompts_content>") if prompts_content else None
    return _build(config_doc, prompts_doc)


def _read(path: FsPath) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [ConfigProblem(file=str(path), line=None, path="", problem=f"cannot read: {exc}")]
        ) from None


def load_path(path: str | os.PathLike[str]) -> RailsConfig:
    """Load a config folder (config.yml, prompts.yml, actions.py) or a single YAML file."""
    root = FsPath(path)
    if root.is_file():
        return _build(_parse(_read(root), str(root)), None, source=str(root))
    if not root.is_dir():
        raise ConfigError(
            [
                ConfigProblem(
                    file=str(root), line=None, path="", problem="no such config folder or file"
                )
            ]
        )

    problems: list[ConfigProblem] = []
    config_file = next((root / n for n in CONFIG_NAMES if (root / n).is_file()), None)
    prompts_file = next((root / n for n in PROMPTS_NAMES if (root / n).is_file()), None)
    if config_file is None:
        problems.append(
            ConfigProblem(
                file=str(root), line=None, path="", problem="no config.yml in this folder"
            )
        )
    for entry in sorted(root.iterdir()):
        if entry.suffix == ".co":
            problems.append(
                ConfigProblem(
                    file=str(entry),
                    line=None,
                    path="",
                    problem="Colang files are not supported by railstream",
                )
            )
        elif entry.suffix in (".yml", ".yaml") and entry not in (config_file, prompts_file):
            problems.append(
                ConfigProblem(
                    file=str(entry),
                    line=None,
                    path="",
                    problem="not read by railstream: move its settings into config.yml or prompts.yml",
                )
            )
    if problems:
        raise ConfigError(problems)
    assert config_file is not None

    config_doc = _parse(_read(config_file), str(config_file))
    prompts_doc = _parse(_read(prompts_file), str(prompts_file)) if prompts_file else None
    actions_file = root / "actions.py"
    actions = load_actions_file(actions_file) if actions_file.is_file() else {}
    return _build(config_doc, prompts_doc, actions=actions, source=str(root))


def locate(source: str | None, path: Path, problem: str) -> ConfigProblem:
    """A problem found once a config is in use (a flow that no action serves), placed at the
    line of ``path`` in the config's file, as the problems found while loading are.

    ``source`` is the loaded config's (``RailsConfig.source``): a folder, a YAML file, or None
    for a config given as text, which has no file to point into.
    """
    where = _format_path(path)
    if source is None:
        return ConfigProblem(file="<yaml_content>", line=None, path=where, problem=problem)
    root = FsPath(source)
    file = (
        root
        if root.is_file()
        else next((root / n for n in CONFIG_NAMES if (root / n).is_file()), root / CONFIG_NAMES[0])
    )
    try:
        doc = _parse(_read(file), str(file))
    except ConfigError:  # gone or changed since it loaded: the problem stands without its line
        return ConfigProblem(file=str(file), line=None, path=where, problem=problem)
    return ConfigProblem(file=doc.file, line=doc.line(path), path=where, problem=problem)
