"""The generation stage and its model providers."""

from ._base import ChatMessage as ChatMessage
from ._base import ChatProvider as ChatProvider
from ._base import ChatRequest as ChatRequest
from ._base import CollectTokens as CollectTokens
from ._base import Completion as Completion
from ._base import ProviderOutcome as ProviderOutcome
from ._custom import IteratorProvider as IteratorProvider
from ._custom import WholeReply as WholeReply
from ._http_client import HttpClients as HttpClients
from ._langchain import LangChainProvider as LangChainProvider
from ._langchain import (
    is_langchain_chat_model as is_langchain_chat_model,
)
from ._openai import OpenAIProvider as OpenAIProvider
from ._openai import resolve_api_key as resolve_api_key
from ._providers import make_provider as make_provider
from ._scripted import ScriptedProvider as ScriptedProvider
from ._scripted import split_tokens as split_tokens
from ._sse import SSEDecoder as SSEDecoder
from ._stage import prompt_text as prompt_text
from ._stage import run_generation as run_generation

__all__ = [
    "ChatMessage",
    "ChatProvider",
    "ChatRequest",
    "CollectTokens",
    "Completion",
    "HttpClients",
    "IteratorProvider",
    "LangChainProvider",
    "OpenAIProvider",
    "ProviderOutcome",
    "SSEDecoder",
    "ScriptedProvider",
    "WholeReply",
    "is_langchain_chat_model",
    "make_provider",
    "prompt_text",
    "resolve_api_key",
    "run_generation",
    "split_tokens",
]
