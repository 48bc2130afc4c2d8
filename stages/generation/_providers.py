"""From a model's config entry to the provider that serves it."""

from __future__ import annotations

from railstream.config_schema import ModelConfig

from ._base import ChatProvider
from ._http_client import HttpClients
from ._openai import OpenAIProvider
from ._scripted import ScriptedProvider

__all__ = ["make_provider"]


def make_provider(model: ModelConfig, clients: HttpClients) -> ChatProvider:
    """The provider for ``model`` (its engine was checked when the config loaded)."""
    if model.engine == "scripted":
        return ScriptedProvider(model=model.model, parameters=model.parameters)
    if model.engine == "openai":
        return OpenAIProvider(model=model, clients=clients)
    if model.engine == "huggingface_pipeline":
        from .huggingface import (
            huggingface_provider,  # transformers only when asked for
        )

        assert model.model
        return huggingface_provider(model.model, model.parameters)
    raise ValueError(f"engine {model.engine!r} has no provider")
