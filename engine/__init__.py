"""railstream: streaming output guardrails on trio.

from engine import LLMRails, RailsConfig

rails = LLMRails(RailsConfig.from_path("examples/demo"))
"""

from config_schema import ConfigError as ConfigError
from config_schema import RailsConfig as RailsConfig
from config_schema import action as action

from .errors import DownstreamError as DownstreamError
from .errors import GenerationError as GenerationError
from .errors import InvalidRequestError as InvalidRequestError
from .errors import RailNotFoundError as RailNotFoundError
from .errors import RailstreamError as RailstreamError
from .errors import StreamingNotSupportedError as StreamingNotSupportedError
from .errors import StreamStateError as StreamStateError
from .llmrails import LLMRails as LLMRails
from .log import ActivatedRail as ActivatedRail
from .log import ExplainInfo as ExplainInfo
from .log import GenerationLog as GenerationLog
from .log import GenerationOptions as GenerationOptions
from .log import GenerationResponse as GenerationResponse
from .log import LLMCallInfo as LLMCallInfo
from .messages import StreamError as StreamError
from .stream import ChunkLatency as ChunkLatency
from .stream import RailsStream as RailsStream
from .stream import StreamState as StreamState
from .streaming import StreamingHandler as StreamingHandler

__all__ = [
    "ActivatedRail",
    "ChunkLatency",
    "ConfigError",
    "DownstreamError",
    "ExplainInfo",
    "GenerationError",
    "GenerationLog",
    "GenerationOptions",
    "GenerationResponse",
    "InvalidRequestError",
    "LLMCallInfo",
    "LLMRails",
    "RailNotFoundError",
    "RailsConfig",
    "RailsStream",
    "RailstreamError",
    "StreamError",
    "StreamState",
    "StreamStateError",
    "StreamingHandler",
    "StreamingNotSupportedError",
    "action",
]
