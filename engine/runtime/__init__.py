"""The runtime: the pipeline that wires the four stages in one nursery (read ``_pipeline.py``
first), the plan it runs, and the translation of a config into those plans (``_plan.py``).
"""

from ._pipeline import BLOCKED_REPLY as BLOCKED_REPLY
from ._pipeline import CHANNEL_CAPACITY as CHANNEL_CAPACITY
from ._pipeline import Pipeline as Pipeline
from ._pipeline import PipelinePlan as PipelinePlan
from ._pipeline import PipelineStatistics as PipelineStatistics
from ._plan import PlanBuilder as PlanBuilder
from ._plan import Side as Side

__all__ = [
    "BLOCKED_REPLY",
    "CHANNEL_CAPACITY",
    "Pipeline",
    "PipelinePlan",
    "PipelineStatistics",
    "PlanBuilder",
    "Side",
]
