"""The OpenAI-compatible HTTP server: ``railstream server --config DIR``."""

from .app import ServerLimits as ServerLimits
from .app import create_app as create_app
from .registry import ConfigRegistry as ConfigRegistry
from .registry import ServerSetupError as ServerSetupError
from .run import serve as serve

__all__ = ["ConfigRegistry", "ServerLimits", "ServerSetupError", "create_app", "serve"]
