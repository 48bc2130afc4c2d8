"""config.yml for railstream: attrs classes, the strict loader, and its errors."""

from .actions import action as action
from .errors import ConfigError as ConfigError
from .errors import ConfigIgnoredWarning as ConfigIgnoredWarning
from .errors import ConfigProblem as ConfigProblem
from .models import BlocklistConfig as BlocklistConfig
from .models import ContentSafetySettings as ContentSafetySettings
from .models import InputRailsConfig as InputRailsConfig
from .models import InstructionConfig as InstructionConfig
from .models import JailbreakDetectionConfig as JailbreakDetectionConfig
from .models import ModelConfig as ModelConfig
from .models import OutputRailsConfig as OutputRailsConfig
from .models import OutputStreamingConfig as OutputStreamingConfig
from .models import PromptConfig as PromptConfig
from .models import PromptMessage as PromptMessage
from .models import RailsConfig as RailsConfig
from .models import RailSettings as RailSettings
from .models import RailsSection as RailsSection
from .models import ReasoningConfig as ReasoningConfig
from .models import RequestParametersConfig as RequestParametersConfig
from .models import TracingConfig as TracingConfig
from .secrets import Parameters as Parameters
from .secrets import redacted as redacted

__all__ = [
    "BlocklistConfig",
    "ConfigError",
    "ConfigIgnoredWarning",
    "ConfigProblem",
    "ContentSafetySettings",
    "InputRailsConfig",
    "InstructionConfig",
    "JailbreakDetectionConfig",
    "ModelConfig",
    "OutputRailsConfig",
    "OutputStreamingConfig",
    "Parameters",
    "PromptConfig",
    "PromptMessage",
    "RailSettings",
    "RailsConfig",
    "RailsSection",
    "ReasoningConfig",
    "RequestParametersConfig",
    "TracingConfig",
    "action",
    "redacted",
]
