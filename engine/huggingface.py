"""``railstream.huggingface``: in-process HuggingFace pipelines as railstream's main model,
under the names NeMo Guardrails gives them (``nemoguardrails.llm.providers.huggingface``).
Needs the ``hf`` extra (transformers, torch)."""

from .stages.generation.huggingface import AsyncTextIteratorStreamer as AsyncTextIteratorStreamer
from .stages.generation.huggingface import (
    HuggingFacePipelineCompatible as HuggingFacePipelineCompatible,
)

__all__ = ["AsyncTextIteratorStreamer", "HuggingFacePipelineCompatible"]
