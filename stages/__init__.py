"""The pipeline's stages, one trio task each: generation, buffering, rails, usage.

``engine.pipeline`` wires them together; read it first.
"""

# The stages speak engine's messages, and engine's pipeline imports the stages: load engine
# first so that whichever package a user imports first, both finish initialising.
import engine as _engine  # noqa: F401  (import order matters, see above)

from .buffering import WindowBuffer as WindowBuffer
from .buffering import run_buffering as run_buffering
from .generation import run_generation as run_generation
from .rails import run_rails as run_rails
from .usage import UsageLedger as UsageLedger
from .usage import run_usage as run_usage

__all__ = [
    "UsageLedger",
    "WindowBuffer",
    "run_buffering",
    "run_generation",
    "run_rails",
    "run_usage",
]
