"""config.yml for railstream: attrs classes, the strict loader, and its errors."""

from ._action_marks import ACTION_BLOCKING_ATTR as ACTION_BLOCKING_ATTR
from ._action_marks import action as action
from ._action_marks import action_name_of as action_name_of
from ._action_marks import output_mapping_of as output_mapping_of
from ._converter import make_converter as make_converter
from ._converter import structure_problems as structure_problems
from ._engines import OpenAISettings as OpenAISettings
from ._errors import ConfigError as ConfigError
from ._errors import ConfigIgnoredWarning as ConfigIgnoredWarning
from ._errors import ConfigProblem as ConfigProblem
from ._errors import RailstreamError as RailstreamError
from ._flows import builtin_judge as builtin_judge
from ._flows import parse_flow as parse_flow
from ._loader import CONFIG_NAMES as CONFIG_NAMES
from ._loader import locate as locate
from ._models import BlocklistConfig as BlocklistConfig
from ._models import ContentSafetySettings as ContentSafetySettings
from ._models import InputRailsConfig as InputRailsConfig
from ._models import InstructionConfig as InstructionConfig
from ._models import JailbreakDetectionConfig as JailbreakDetectionConfig
from ._models import ModelConfig as ModelConfig
from ._models import OutputRailsConfig as OutputRailsConfig
from ._models import OutputStreamingConfig as OutputStreamingConfig
from ._models import PromptConfig as PromptConfig
from ._models import PromptMessage as PromptMessage
from ._models import RailsConfig as RailsConfig
from ._models import RailSettings as RailSettings
from ._models import RailsSection as RailsSection
from ._models import ReasoningConfig as ReasoningConfig
from ._models import RequestParametersConfig as RequestParametersConfig
from ._models import TracingConfig as TracingConfig
from ._secrets import Parameters as Parameters
from ._secrets import redacted as redacted
from ._secrets import secret_values as secret_values
from ._stream_first import stream_first_notice as stream_first_notice

__all__ = [
    "ACTION_BLOCKING_ATTR",
    "BlocklistConfig",
    "CONFIG_NAMES",
    "ConfigError",
    "ConfigIgnoredWarning",
    "ConfigProblem",
    "ContentSafetySettings",
    "InputRailsConfig",
    "InstructionConfig",
    "JailbreakDetectionConfig",
    "ModelConfig",
    "OpenAISettings",
    "OutputRailsConfig",
    "OutputStreamingConfig",
    "Parameters",
    "PromptConfig",
    "PromptMessage",
    "RailSettings",
    "RailsConfig",
    "RailsSection",
    "RailstreamError",
    "ReasoningConfig",
    "RequestParametersConfig",
    "TracingConfig",
    "action",
    "action_name_of",
    "builtin_judge",
    "locate",
    "make_converter",
    "output_mapping_of",
    "parse_flow",
    "redacted",
    "secret_values",
    "stream_first_notice",
    "structure_problems",
]
