"""config.yml for railstream: attrs classes, the strict loader, and its errors."""

from .actions import action as action
from .errors import ConfigError as ConfigError
from .errors import ConfigIgnoredWarning as ConfigIgnoredWarning
from .errors import ConfigProblem as ConfigProblem
from .models import BlocklistConfig as BlocklistConfig
from .models import InputRailsConfig as InputRailsConfig
from .models import InstructionConfig as InstructionConfig
from .models import ModelConfig as ModelConfig
from .models import OutputRailsConfig as OutputRailsConfig
from .models import OutputStreamingConfig as OutputStreamingConfig
from .models import PromptConfig as PromptConfig
from .models import RailsConfig as RailsConfig
from .models import RailsSection as RailsSection
from .models import RequestParametersConfig as RequestParametersConfig
from .secrets import Parameters as Parameters
from .secrets import redacted as redacted

__all__ = [
    "BlocklistConfig",
    "ConfigError",
    "ConfigIgnoredWarning",
    "ConfigProblem",
    "InputRailsConfig",
    "InstructionConfig",
    "ModelConfig",
    "OutputRailsConfig",
    "OutputStreamingConfig",
    "Parameters",
    "PromptConfig",
    "RailsConfig",
    "RailsSection",
    "RequestParametersConfig",
    "action",
    "redacted",
]
