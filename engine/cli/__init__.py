"""The ``railstream`` command: ``railstream chat CONFIG`` and ``railstream server``."""

from ._main import main as main

__all__ = [
    "main",
]
