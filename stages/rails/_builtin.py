"""The registry of built-in rails: which rail a flow name stands for, built from the config.

A new built-in rail is a class in its own module (an LLM judge in ``_judges``) and an entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from railstream.config_schema import builtin_judge, parse_flow

from ..generation import ChatProvider, HttpClients
from ._blocklist import BlocklistCheckOutput
from ._jailbreak import JailbreakDetectionModel
from ._judges import (
    ContentSafetyCheckInput,
    ContentSafetyCheckOutput,
    LlamaGuardCheckInput,
    LlamaGuardCheckOutput,
    LLMJudge,
    SelfCheckInput,
    SelfCheckOutput,
    TopicSafetyCheckInput,
)

__all__ = ["builtin_rail"]


_JUDGE_CLASSES: dict[str, type[LLMJudge]] = {
    "self check input": SelfCheckInput,
    "self check output": SelfCheckOutput,
    "content safety check input": ContentSafetyCheckInput,
    "content safety check output": ContentSafetyCheckOutput,
    "llama guard check input": LlamaGuardCheckInput,
    "llama guard check output": LlamaGuardCheckOutput,
    "topic safety check input": TopicSafetyCheckInput,
}


def builtin_rail(
    flow: str, config: Any, providers: Mapping[str, ChatProvider], http: HttpClients
) -> Any:
    """The built-in rail for ``flow`` (as written, parameters and all), or None if it names
    none (it is then an action)."""
    if flow == "blocklist check output":
        return BlocklistCheckOutput(config.rails.output.blocklist)
    if flow == "jailbreak detection model":
        return JailbreakDetectionModel(config.rails.config.jailbreak_detection, http)
    ref = parse_flow(flow)
    judge = builtin_judge(ref)
    if judge is None:
        return None
    task, model_type = judge
    # A self check runs on the model of its own task's type if there is one, else main.
    answering = model_type if model_type is not None else (task if task in providers else "main")
    provider = providers.get(answering)
    prompt = config.prompt(task, config.model(answering))
    if prompt is None or provider is None:
        raise ValueError(
            f"flow {flow!r} needs a prompt for {task!r} and a model of type {model_type or task!r}"
        )
    return _JUDGE_CLASSES[ref.name](prompt=prompt, provider=provider, name=flow, config=config)
