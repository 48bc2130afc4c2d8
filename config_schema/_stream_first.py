"""What ``stream_first: true`` means for a config with output rails, said once at start-up by
``railstream chat --verbose --streaming`` and ``railstream server``."""

from __future__ import annotations

from ._models import RailsConfig

__all__ = ["stream_first_notice"]


def stream_first_notice(config: RailsConfig) -> str | None:
    """The notice for a config whose output rails check streamed text after releasing it
    (``rails.output.streaming.stream_first: true``, NeMo's default); None for any other."""
    output = config.rails.output
    if not (output.flows and output.streaming.enabled and output.streaming.stream_first):
        return None
    return (
        "output rails with stream_first: true: streamed text reaches the user before its "
        "window is checked, so a text the rails block has already been shown when the stream "
        "ends with content_filter; set rails.output.streaming.stream_first: false to hold "
        "text until it is checked"
    )
