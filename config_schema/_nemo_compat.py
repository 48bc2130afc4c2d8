"""NeMo Guardrails' config.yml, as railstream reads it: the settings it refuses (each an
error saying why), those it accepts and ignores (one warning each), and NeMo's ways of writing
a model rewritten into railstream's.

A NeMo key railstream learns to refuse or ignore is one entry in a table here. "*" in a key's
path stands for any list index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ._converter import Path

__all__ = ["OPENAI_COMPATIBLE", "ignored_settings", "nemo_models", "not_supported_problems"]

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


def _pop_matching(data: Any, pattern: tuple[str, ...], path: Path = ()) -> Iterator[Path]:
    """Remove the keys matching ``pattern`` from ``data``, yielding where each one was."""
    head, *rest = pattern
    if head == "*":
        if isinstance(data, list):
            for i, item in enumerate(data):
                yield from _pop_matching(item, tuple(rest), (*path, i))
    elif isinstance(data, dict) and head in data:
        if rest:
            yield from _pop_matching(data[head], tuple(rest), (*path, head))
        else:
            del data[head]
            yield (*path, head)


def not_supported_problems(data: Any) -> Iterator[tuple[Path, str]]:
    """Remove the settings railstream refuses from ``data``, yielding where each was and why."""
    for pattern, message in _NOT_SUPPORTED.items():
        for path in _pop_matching(data, pattern):
            yield path, message


def ignored_settings(data: Any) -> Iterator[tuple[Path, str]]:
    """Remove the settings railstream ignores from ``data``, yielding where each was and why."""
    for pattern, why in _IGNORED.items():
        for path in _pop_matching(data, pattern):
            yield path, why


# NeMo's engines that are OpenAI-compatible servers, and the URL each defaults to.
OPENAI_COMPATIBLE: dict[str, str | None] = {
    "nim": "https://integrate.api.nvidia.com/v1",  # NVIDIA's hosted endpoint
    "vllm_openai": None,  # a vLLM server of your own: its URL is required
}
# NeMo's (LangChain's) spellings of the OpenAI provider's parameters.
_NEMO_SPELLINGS = {"openai_api_base": "base_url", "openai_api_key": "api_key"}


def nemo_models(data: Any, nemo_engines: dict[int, str]) -> Iterator[tuple[Path, str]]:
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
        if isinstance(engine, str) and engine in OPENAI_COMPATIBLE:
            model["engine"] = "openai"
            nemo_engines[i] = engine
            default = OPENAI_COMPATIBLE[engine]
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
