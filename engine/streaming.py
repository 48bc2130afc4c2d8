"""``railstream.streaming``: where NeMo Guardrails users import ``StreamingHandler`` from
(``nemoguardrails.streaming``), so that only the package name changes."""

from .facade import StreamingHandler as StreamingHandler

__all__ = ["StreamingHandler"]
