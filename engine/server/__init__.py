"""The OpenAI-compatible HTTP server: ``railstream server --config DIR``."""

from ._app import create_app as create_app
from ._hypercorn_contract import hypercorn_mismatches as hypercorn_mismatches
from ._limits import ServerLimits as ServerLimits
from ._observe import JsonFormatter as JsonFormatter
from ._registry import ConfigRegistry as ConfigRegistry
from ._registry import ServerSetupError as ServerSetupError
from ._run import CannotListenError as CannotListenError
from ._run import announce as announce
from ._run import first_leaf as first_leaf
from ._run import serve as serve
from ._run import settle_heap as settle_heap
from ._workers import serve_workers as serve_workers

__all__ = [
    "CannotListenError",
    "ConfigRegistry",
    "JsonFormatter",
    "ServerLimits",
    "ServerSetupError",
    "announce",
    "create_app",
    "first_leaf",
    "hypercorn_mismatches",
    "serve",
    "serve_workers",
    "settle_heap",
]
