"""The generation stage and its model providers."""

from .base import ChatMessage as ChatMessage
from .base import ChatProvider as ChatProvider
from .base import ChatRequest as ChatRequest
from .base import CollectTokens as CollectTokens
from .base import Completion as Completion
from .base import ProviderOutcome as ProviderOutcome
from .custom import IteratorProvider as IteratorProvider
from .custom import WholeReply as WholeReply
from .http_client import HttpClients as HttpClients
from .langchain import LangChainProvider as LangChainProvider
from .langchain import is_langchain_chat_model as is_langchain_chat_model
from .openai import OpenAIProvider as OpenAIProvider
from .providers import make_provider as make_provider
from .scripted import ScriptedProvider as ScriptedProvider
from .scripted import split_tokens as split_tokens
from .stage import prompt_text as prompt_text
from .stage import run_generation as run_generation

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
    "ScriptedProvider",
    "is_langchain_chat_model",
    "make_provider",
    "prompt_text",
    "run_generation",
    "split_tokens",
    "WholeReply",
]
