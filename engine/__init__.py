"""railstream: streaming output guardrails on trio.

    from railstream import LLMRails, RailsConfig

    rails = LLMRails(RailsConfig.from_path("examples/demo"))

Everything an application uses is imported from here. The packages below are the layers, each
importing only those beneath it: ``railstream.config_schema`` (config.yml) <-
``railstream.stages`` (the messages between stages, their errors, and the stages) <-
``railstream.runtime`` (the pipeline) <- ``railstream.facade`` (LLMRails and its streams) <-
the applications, ``railstream.server`` and ``railstream.cli``.
"""

from importlib.metadata import PackageNotFoundError, version
from types import FunctionType

import attrs

from .config_schema import ConfigError as ConfigError
from .config_schema import ConfigIgnoredWarning as ConfigIgnoredWarning
from .config_schema import RailsConfig as RailsConfig
from .config_schema import action as action
from .facade import ActivatedRail as ActivatedRail
from .facade import ChunkLatency as ChunkLatency
from .facade import ExplainInfo as ExplainInfo
from .facade import GenerationLog as GenerationLog
from .facade import GenerationOptions as GenerationOptions
from .facade import GenerationResponse as GenerationResponse
from .facade import LLMCallInfo as LLMCallInfo
from .facade import LLMRails as LLMRails
from .facade import RailsStream as RailsStream
from .facade import StreamingHandler as StreamingHandler
from .facade import StreamState as StreamState
from .stages import DownstreamError as DownstreamError
from .stages import GenerationError as GenerationError
from .stages import InvalidRequestError as InvalidRequestError
from .stages import ProviderConnectionError as ProviderConnectionError
from .stages import ProviderProtocolError as ProviderProtocolError
from .stages import ProviderTimeoutError as ProviderTimeoutError
from .stages import RailNotFoundError as RailNotFoundError
from .stages import RailstreamError as RailstreamError
from .stages import StreamError as StreamError
from .stages import StreamingNotSupportedError as StreamingNotSupportedError
from .stages import StreamStateError as StreamStateError

try:
    __version__ = version("railstream")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ActivatedRail",
    "ChunkLatency",
    "ConfigError",
    "ConfigIgnoredWarning",
    "DownstreamError",
    "ExplainInfo",
    "GenerationError",
    "GenerationLog",
    "GenerationOptions",
    "GenerationResponse",
    "InvalidRequestError",
    "LLMCallInfo",
    "LLMRails",
    "ProviderConnectionError",
    "ProviderProtocolError",
    "ProviderTimeoutError",
    "RailNotFoundError",
    "RailsConfig",
    "RailsStream",
    "RailstreamError",
    "StreamError",
    "StreamState",
    "StreamStateError",
    "StreamingHandler",
    "StreamingNotSupportedError",
    "__version__",
    "action",
]


def _show_public_paths() -> None:
    """Public objects print, pickle and appear in tracebacks under the path users import them
    by (``railstream.LLMRails``, ``railstream.stages.generation.ChatRequest``), not the
    private module that defines them, as trio's ``fixup_module_metadata`` does."""
    import sys

    # The root first: a name it re-exports shows as railstream.X, not railstream.facade.X.
    namespaces = [(__name__, __all__)]
    packages = ("config_schema", "stages", "stages.generation", "stages.rails", "runtime", "facade")
    for package in packages:
        module = sys.modules[f"{__name__}.{package}"]
        namespaces.append((module.__name__, module.__all__))
    for public, names in namespaces:
        namespace = sys.modules[public].__dict__
        for name in names:
            obj = namespace[name]
            defined_in = getattr(obj, "__module__", None)
            if not isinstance(obj, type | FunctionType) or not isinstance(defined_in, str):
                continue
            inside = defined_in.removeprefix(f"{public}.")
            if inside == defined_in or not any(p.startswith("_") for p in inside.split(".")):
                continue  # another package's, or already shown by a shorter path
            if isinstance(obj, type) and attrs.has(obj):
                # Its annotations are strings, read in the module __module__ names: read them
                # now, in the defining module, before the name changes (cattrs would look for
                # them in the public package's namespace). One that names what only a type
                # checker knows (``array[int]``) keeps its module, where it can be read.
                try:
                    attrs.resolve_types(obj)
                except (NameError, TypeError):
                    continue
            obj.__module__ = public


_show_public_paths()
del _show_public_paths
