"""The pipeline's stages, one trio task each: generation, buffering, rails, usage.

What flows between them (``_messages``) and the errors they raise (``_errors``) live here, below
every stage; ``railstream.runtime`` wires the stages together (read its ``_pipeline.py`` first).
"""

from ._buffering import WindowBuffer as WindowBuffer
from ._buffering import run_buffering as run_buffering
from ._content import content_text as content_text
from ._content import non_text_parts as non_text_parts
from ._errors import DownstreamError as DownstreamError
from ._errors import GenerationError as GenerationError
from ._errors import InvalidRequestError as InvalidRequestError
from ._errors import ProviderConnectionError as ProviderConnectionError
from ._errors import ProviderProtocolError as ProviderProtocolError
from ._errors import ProviderTimeoutError as ProviderTimeoutError
from ._errors import RailNotFoundError as RailNotFoundError
from ._errors import RailstreamError as RailstreamError
from ._errors import StreamingNotSupportedError as StreamingNotSupportedError
from ._errors import StreamStateError as StreamStateError
from ._flow import hand_on as hand_on
from ._messages import BufferEvent as BufferEvent
from ._messages import EndOfTokens as EndOfTokens
from ._messages import GenerationEnded as GenerationEnded
from ._messages import GenerationEvent as GenerationEvent
from ._messages import GenerationFailed as GenerationFailed
from ._messages import LLMCall as LLMCall
from ._messages import LogRecord as LogRecord
from ._messages import OutputEvent as OutputEvent
from ._messages import Passthrough as Passthrough
from ._messages import RailRun as RailRun
from ._messages import Released as Released
from ._messages import Stopwatch as Stopwatch
from ._messages import StreamEnded as StreamEnded
from ._messages import StreamError as StreamError
from ._messages import StreamFailed as StreamFailed
from ._messages import TokenBatch as TokenBatch
from ._messages import Usage as Usage
from ._messages import Window as Window
from ._messages import token_ends as token_ends
from ._passthrough import PASSING_THROUGH as PASSING_THROUGH
from ._passthrough import passes_through as passes_through
from ._usage import MAX_LOG_TEXT_CHARS as MAX_LOG_TEXT_CHARS
from ._usage import MAX_TEXT_CHARS as MAX_TEXT_CHARS
from ._usage import UsageLedger as UsageLedger
from ._usage import run_usage as run_usage
from ._usercode import CLEANUP_GRACE_S as CLEANUP_GRACE_S
from ._usercode import TrioUserCode as TrioUserCode
from ._usercode import UserCode as UserCode
from ._usercode import is_async_callable as is_async_callable
from .generation import run_generation as run_generation
from .rails import run_rails as run_rails

__all__ = [
    "BufferEvent",
    "CLEANUP_GRACE_S",
    "DownstreamError",
    "EndOfTokens",
    "GenerationEnded",
    "GenerationError",
    "GenerationEvent",
    "GenerationFailed",
    "InvalidRequestError",
    "LLMCall",
    "LogRecord",
    "MAX_LOG_TEXT_CHARS",
    "MAX_TEXT_CHARS",
    "OutputEvent",
    "PASSING_THROUGH",
    "Passthrough",
    "ProviderConnectionError",
    "ProviderProtocolError",
    "ProviderTimeoutError",
    "RailNotFoundError",
    "RailRun",
    "RailstreamError",
    "Released",
    "Stopwatch",
    "StreamEnded",
    "StreamError",
    "StreamFailed",
    "StreamStateError",
    "StreamingNotSupportedError",
    "TokenBatch",
    "TrioUserCode",
    "Usage",
    "UsageLedger",
    "UserCode",
    "Window",
    "WindowBuffer",
    "content_text",
    "hand_on",
    "is_async_callable",
    "non_text_parts",
    "passes_through",
    "run_buffering",
    "run_generation",
    "run_rails",
    "run_usage",
    "token_ends",
]
