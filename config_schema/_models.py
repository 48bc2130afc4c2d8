"""The shape of config.yml (and prompts.yml), as frozen attrs classes.

These classes hold what the YAML says, typed; rules that span fields (``context_size <
chunk_size``, a flow needing its prompt) live in ``_checks`` so that every problem is
reported at once, each at its own line. ``RailsConfig.from_path`` and ``from_content`` hand
the loader the class to build, so the loader needs no import of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from ._converter import NOT_FROM_YAML
from ._loader import load_content, load_path
from ._secrets import Parameters

__all__ = [
    "BlocklistConfig",
    "ContentSafetySettings",
    "InputRailsConfig",
    "InstructionConfig",
    "JailbreakDetectionConfig",
    "ModelConfig",
    "OutputRailsConfig",
    "OutputStreamingConfig",
    "PromptConfig",
    "PromptMessage",
    "RailSettings",
    "RailsConfig",
    "RailsSection",
    "ReasoningConfig",
    "RequestParametersConfig",
    "TracingConfig",
]


def _freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(value)


@attrs.frozen(kw_only=True)
class ModelConfig:
    """One entry of ``models``: which engine serves a task (``main`` or a task name)."""

    type: str
    engine: str
    model: str | None = None
    api_key_env_var: str | None = None
    # Secrets in it (api_key, ...) are redacted in every repr and str (railstream.config_schema._secrets).
    parameters: Mapping[str, Any] = attrs.field(factory=Parameters, converter=Parameters)
    # Not from YAML: the engine as NeMo wrote it (nim, vllm_openai) when the loader mapped it
    # to ``openai``, so a prompt's ``models: [nim/...]`` still names this model.
    nemo_engines: tuple[str, ...] = attrs.field(default=(), metadata=NOT_FROM_YAML)


@attrs.frozen(kw_only=True)
class OutputStreamingConfig:
    """``rails.output.streaming``: how output rails see a stream (see SPEC, token windows)."""

    enabled: bool = False
    chunk_size: int = 200
    context_size: int = 50
    stream_first: bool = True
    max_concurrent_checks: int = 4
    # A hung rail must never hang the stream: past this, it fails closed.
    rail_timeout_s: float | None = 30.0
    # Per flow, overriding rail_timeout_s: {"self check output": 20}.
    rail_timeouts_s: dict[str, float] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class BlocklistConfig:
    """``rails.output.blocklist``: what ``blocklist check output`` blocks.

    Words match whole (not inside longer words), case-folded unless ``case_sensitive``;
    patterns are regular expressions, compiled once when the config loads.
    """

    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    case_sensitive: bool = False


@attrs.frozen(kw_only=True)
class OutputRailsConfig:
    """``rails.output``: the flows applied to the bot's output."""

    flows: tuple[str, ...] = ()
    parallel: bool = False
    streaming: OutputStreamingConfig = attrs.field(factory=OutputStreamingConfig)
    blocklist: BlocklistConfig = attrs.field(factory=BlocklistConfig)


@attrs.frozen(kw_only=True)
class InputRailsConfig:
    """``rails.input``: the flows applied to the user's message before the reply is released.

    They run on the last user message, once, before the model is asked; a block answers with
    NeMo's refusal. ``rail_timeout_s`` (and ``rail_timeouts_s`` per flow) bound each rail: past
    it, the rail fails closed.

    ``speculative_generation`` (railstream's, not NeMo's): ask the model at once, while the input
    rails run, so time to first chunk is the longer of the two rather than their sum. Nothing it
    generates is released, or checked by output rails, until the input rails pass; a block
    cancels it. Off by default: a blocked request then costs the tokens generated meanwhile.
    """

    flows: tuple[str, ...] = ()
    parallel: bool = False
    rail_timeout_s: float | None = 30.0
    rail_timeouts_s: dict[str, float] = attrs.field(factory=dict)
    speculative_generation: bool = False


@attrs.frozen(kw_only=True)
class JailbreakDetectionConfig:
    """``rails.config.jailbreak_detection``: where ``jailbreak detection model`` asks.

    ``nim_base_url`` + ``nim_server_endpoint``: NemoGuard JailbreakDetect (NVIDIA's hosted one,
    or a NIM of your own), which takes ``{"input": text}``; ``server_endpoint``: NeMo's own
    jailbreak detection server, which takes ``{"prompt": text}``. Both answer
    ``{"jailbreak": true|false, ...}``. The key is ``api_key``, or read from the environment
    variable ``api_key_env_var``.
    """

    server_endpoint: str | None = None
    nim_base_url: str | None = None
    nim_server_endpoint: str = "classify"
    api_key_env_var: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class ReasoningConfig:
    enabled: bool = False


@attrs.frozen(kw_only=True)
class ContentSafetySettings:
    """``rails.config.content_safety``: ``reasoning.enabled`` is the prompts'
    ``{{ reasoning_enabled }}`` (Nemotron Content Safety Reasoning's /think or /no_think)."""

    reasoning: ReasoningConfig = attrs.field(factory=ReasoningConfig)


@attrs.frozen(kw_only=True)
class RailSettings:
    """``rails.config``: settings of NeMo's built-in rails that railstream has."""

    jailbreak_detection: JailbreakDetectionConfig = attrs.field(factory=JailbreakDetectionConfig)
    content_safety: ContentSafetySettings = attrs.field(factory=ContentSafetySettings)


@attrs.frozen(kw_only=True)
class RailsSection:
    """``rails``: input and output rails; NeMo's other sections are refused.

    ``refusal`` (railstream's; NeMo says it with a Colang ``bot refuse to respond``) is the
    answer to a blocked user message, and to a blocked reply asked for whole.
    """

    input: InputRailsConfig = attrs.field(factory=InputRailsConfig)
    output: OutputRailsConfig = attrs.field(factory=OutputRailsConfig)
    config: RailSettings = attrs.field(factory=RailSettings)
    refusal: str = "I'm sorry, I can't respond to that."


@attrs.frozen(kw_only=True)
class RequestParametersConfig:
    """``request_parameters``: what a caller may set per request (a server client's body, or
    ``options={"llm_params": ...}``), over the operator's ``models[].parameters``.

    ``allow``: the parameters a caller may set (null: any); ``max``: upper bounds on numeric
    ones. A request outside them is refused (a 400 from the server), never silently changed.
    """

    allow: tuple[str, ...] | None = None
    max: dict[str, float] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class InstructionConfig:
    """One entry of ``instructions`` (NeMo's): ``general`` instructions become the main
    call's system message, before the conversation's own messages."""

    type: str
    content: str


@attrs.frozen(kw_only=True)
class PromptMessage:
    """One message of a message-list prompt: NeMo's ``type`` (system, user, assistant or
    bot) and its template."""

    type: str
    content: str

    @property
    def role(self) -> str:
        return "assistant" if self.type == "bot" else self.type


@attrs.frozen(kw_only=True)
class PromptConfig:
    """One entry of ``prompts``: the template used for an LLM task, as one text
    (``content``: sent as the user's message) or as messages with roles (``messages``).
    ``models`` limits it to some models (NeMo's ``engine/model``, ``model`` or ``engine``)."""

    task: str
    content: str | None = None
    messages: tuple[PromptMessage, ...] | None = None
    models: tuple[str, ...] | None = None
    # How the judge's answer is read (NeMo's names; see railstream.config_schema._flows.OUTPUT_PARSERS),
    # and the judge call's own limits.
    output_parser: str | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] | None = None


@attrs.frozen(kw_only=True)
class TracingConfig:
    """NeMo's ``tracing``: ``enabled`` (NeMo's default: false) turns this config's
    OpenTelemetry spans on or off. Without a ``tracing`` key, spans are made whenever the
    application configured a tracer provider."""

    enabled: bool = False


@attrs.frozen(kw_only=True)
class RailsConfig:
    """A whole guardrails configuration.

    Load it with :meth:`from_path` (a folder holding ``config.yml``, optional ``prompts.yml``
    and ``actions.py``) or :meth:`from_content`::

        config = RailsConfig.from_path("examples/demo")
    """

    models: tuple[ModelConfig, ...] = ()
    streaming: bool = False
    rails: RailsSection = attrs.field(factory=RailsSection)
    prompts: tuple[PromptConfig, ...] = ()
    instructions: tuple[InstructionConfig, ...] = ()
    request_parameters: RequestParametersConfig = attrs.field(factory=RequestParametersConfig)
    tracing: TracingConfig | None = None
    # Not from YAML: actions found in the folder's actions.py, and where the config came from.
    actions: Mapping[str, Callable[..., Any]] = attrs.field(
        factory=dict, converter=_freeze_mapping, eq=False, repr=False, metadata=NOT_FROM_YAML
    )
    source: str | None = attrs.field(default=None, metadata=NOT_FROM_YAML)

    @classmethod
    def from_path(cls, path: str | Any) -> RailsConfig:
        """Load the config folder (or single YAML file) at ``path``."""
        return load_path(cls, path)

    @classmethod
    def from_content(
        cls,
        colang_content: str | None = None,
        yaml_content: str | None = None,
        *,
        prompts_content: str | None = None,
    ) -> RailsConfig:
        """Load a config from YAML text (as config.yml would hold it); Colang is refused."""
        return load_content(
            cls, yaml_content or "", prompts_content=prompts_content, colang_content=colang_content
        )

    def model(self, model_type: str) -> ModelConfig | None:
        """The model configured for ``model_type`` (``main``, or a task name), if any."""
        for model in self.models:
            if model.type == model_type:
                return model
        return None

    def prompt(self, task: str, model: ModelConfig | None = None) -> PromptConfig | None:
        """The prompt configured for ``task`` and the ``model`` that will answer it, if any.

        As NeMo picks: of the task's prompts, one naming the model as ``engine/model`` beats
        one naming the model alone, which beats one naming the engine alone, which beats one
        naming no models; one naming only other models is never picked. The first wins a tie.
        """
        best: tuple[float, PromptConfig] | None = None
        for prompt in self.prompts:
            if prompt.task != task:
                continue
            score = _prompt_score(prompt, model)
            if score > 0 and (best is None or score > best[0]):
                best = (score, prompt)
        return best[1] if best else None


def _prompt_score(prompt: PromptConfig, model: ModelConfig | None) -> float:
    if prompt.models is None:
        return 0.2
    if model is None:
        return 0.0
    engines = {model.engine, *model.nemo_engines}
    score = 0.0
    for name in prompt.models:
        engine, _, model_name = name.partition("/")
        if model_name and engine in engines and model_name == model.model:
            score = max(score, 1.0)
        elif name == model.model:
            score = max(score, 0.8)
        elif not model_name and name in engines:
            score = max(score, 0.5)
    return score
