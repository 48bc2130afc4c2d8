"""The facade: what an application holds (LLMRails, its streams, NeMo's StreamingHandler), the
generation log it reads afterwards, and the bridge that runs it all from asyncio.
"""

from ._generation_log import ActivatedRail as ActivatedRail
from ._generation_log import ExecutedAction as ExecutedAction
from ._generation_log import ExplainInfo as ExplainInfo
from ._generation_log import GenerationLog as GenerationLog
from ._generation_log import GenerationLogOptions as GenerationLogOptions
from ._generation_log import GenerationOptions as GenerationOptions
from ._generation_log import GenerationResponse as GenerationResponse
from ._generation_log import GenerationStats as GenerationStats
from ._generation_log import LLMCallInfo as LLMCallInfo
from ._generation_log import parse_options as parse_options
from ._llmrails import BLOCKED_REPLY as BLOCKED_REPLY
from ._llmrails import INTERNAL_ERROR_REPLY as INTERNAL_ERROR_REPLY
from ._llmrails import LLMRails as LLMRails
from ._rails_stream import ChunkLatency as ChunkLatency
from ._rails_stream import RailsStream as RailsStream
from ._rails_stream import StreamState as StreamState
from ._streaming_handler import StreamingHandler as StreamingHandler

__all__ = [
    "ActivatedRail",
    "BLOCKED_REPLY",
    "ChunkLatency",
    "ExecutedAction",
    "ExplainInfo",
    "GenerationLog",
    "GenerationLogOptions",
    "GenerationOptions",
    "GenerationResponse",
    "GenerationStats",
    "INTERNAL_ERROR_REPLY",
    "LLMCallInfo",
    "LLMRails",
    "RailsStream",
    "StreamState",
    "StreamingHandler",
    "parse_options",
]
