"""What the server tells its operator: one log line per request, and Prometheus metrics.

- **The access log** (logger ``railstream.access``, INFO): one line per chat request when it
  ends: config, streamed or not, status, outcome (``completed``, ``blocked`` with the rail,
  ``rail_error``, ``model_error`` with the upstream's kind, ``client_left``, ``shutdown``,
  ``rejected`` with the status's reason), tokens generated, duration. Never message text, never
  a key: the fields are counts, names from the config, and error kinds.
- **Metrics** (``prometheus-client``, optional: ``pip install 'railstream[metrics]'``; without
  it there is no ``/metrics``): requests by config and outcome; blocks by rail; streams in
  flight; rail run and LLM call durations; time to first chunk; tokens generated, chunks released;
  upstream errors by kind. Every label value is bounded: a config id, a rail or task name from
  the config, an outcome or error kind from a fixed set; never user text or request ids.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs

from stages.usage import UsageLedger

__all__ = ["JsonFormatter", "Metrics", "RequestRecord", "metrics_available"]

access_logger = logging.getLogger("railstream.access")

# The pipeline's channels (engine.pipeline.CHANNEL_CAPACITY), as PipelineStatistics names them.
CHANNELS = ("tokens", "windows", "output", "usage")

# Outcomes of a request: a fixed set, so a label never grows without bound.
OUTCOMES = (
    "completed",
    "blocked",
    "rail_error",
    "model_error",
    "client_left",
    "shutdown",
    "rejected",
    "server_error",
)


def metrics_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


@attrs.define
class RequestRecord:
    """One chat request, filled in as it goes and logged once, when it ends."""

    stream: bool = False
    config_id: str | None = None
    status: int = 200
    outcome: str = "completed"
    rail: str | None = None  # the rail that blocked or failed
    error: str | None = None  # an error's type or code (never its message)
    tokens: int | None = None  # tokens the model generated
    released_chunks: int = 0  # a streamed reply's text chunks sent
    started: float = attrs.field(factory=time.perf_counter)
    first_chunk_s: float | None = None
    handed_over: bool = False  # a streamed reply, which logs the request when it is sent
    _done: bool = False

    def fields(self) -> dict[str, Any]:
        return {
            "config": self.config_id,
            "stream": self.stream,
            "status": self.status,
            "outcome": self.outcome,
            "rail": self.rail,
            "error": self.error,
            "tokens": self.tokens,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 1),
        }

    def finish(self, metrics: Metrics | None) -> None:
        """Log the request's line and count it; once, however many paths end it."""
        if self._done:
            return
        self._done = True
        fields = self.fields()
        text = " ".join(f"{k}={_text(v)}" for k, v in fields.items() if v is not None)
        access_logger.info("POST /v1/chat/completions %s", text, extra={"fields": fields})
        if metrics is not None:
            metrics.record_request(self)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return json.dumps(text) if (" " in text or '"' in text or not text) else text


class JsonFormatter(logging.Formatter):
    """``--log-format json``: one JSON object per line, with a record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if v is not None})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


# Seconds: from a fast rail (a regex) to a slow judge or model call.
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (``/metrics`` serves it)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "railstream_requests",
            "Chat requests answered, by config and outcome.",
            ["config", "stream", "outcome"],
            registry=r,
        )
        self.blocks = Counter(
            "railstream_rail_blocks",
            "Replies (and user messages) a rail blocked, by config, rail and side.",
            ["config", "rail", "side"],
            registry=r,
        )
        self.rail_errors = Counter(
            "railstream_rail_errors",
            "Rail runs that failed closed (raised, timed out), by config, rail and side.",
            ["config", "rail", "side"],
            registry=r,
        )
        self.in_flight = Gauge(
            "railstream_streams_in_flight", "Streamed replies being written now.", registry=r
        )
        self.rail_duration = Histogram(
            "railstream_rail_duration_seconds",
            "One rail's run on one window (or on the user's message).",
            ["config", "rail", "side"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.llm_duration = Histogram(
            "railstream_llm_call_duration_seconds",
            "LLM calls (the main one, task general, and the judges'), by config and task.",
            ["config", "task", "status"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.first_chunk = Histogram(
            "railstream_time_to_first_chunk_seconds",
            "From a streamed request's arrival to its first released chunk.",
            ["config"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.tokens_generated = Counter(
            "railstream_tokens_generated",
            "Tokens the main model generated (blocked and cut-off replies included).",
            ["config"],
            registry=r,
        )
        self.chunks_released = Counter(
            "railstream_chunks_released",
            "Text chunks of streamed replies that passed the rails and were sent.",
            ["config"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "railstream_upstream_errors",
            "Model failures, by config and kind (the error's code: upstream_timeout, ...).",
            ["config", "kind"],
            registry=r,
        )

    def watch_channels(self, streams: Callable[[], Iterable[Any]]) -> None:
        """Scrape-time gauges of the pipeline channels of the streams ``streams()`` gives
        (each with ``.statistics()``): how many items wait in each channel, over all streams,
        and how many could. A channel near full is where streams wait (backpressure)."""
        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.registry import Collector

        class Channels(Collector):
            def collect(self) -> Iterator[GaugeMetricFamily]:
                used = GaugeMetricFamily(
                    "railstream_channel_items",
                    "Items waiting in the streams' pipeline channels, by channel.",
                    labels=["channel"],
                )
                room = GaugeMetricFamily(
                    "railstream_channel_capacity",
                    "Room in the streams' pipeline channels, by channel (capacity x streams).",
                    labels=["channel"],
                )
                totals = {name: [0, 0] for name in CHANNELS}
                for stream in streams():
                    statistics = stream.statistics()
                    for name in CHANNELS:
                        channel = getattr(statistics, name)
                        totals[name][0] += channel.current_buffer_used
                        totals[name][1] += channel.max_buffer_size
                for name, (items, capacity) in totals.items():
                    used.add_metric([name], items)
                    room.add_metric([name], capacity)
                yield used
                yield room

        self.registry.register(Channels())

    def record_request(self, request: RequestRecord) -> None:
        config = request.config_id or ""
        self.requests.labels(config, str(request.stream).lower(), request.outcome).inc()
        if request.outcome == "model_error":
            self.upstream_errors.labels(config, request.error or "unknown").inc()
        if request.first_chunk_s is not None:
            self.first_chunk.labels(config).observe(request.first_chunk_s)
        if request.released_chunks:
            self.chunks_released.labels(config).inc(request.released_chunks)

    def record_ledger(self, config_id: str, ledger: UsageLedger) -> None:
        """A finished call's rail runs and LLM calls (the facade's ``on_finished``)."""
        for run in ledger.rail_runs:
            self.rail_duration.labels(config_id, run.rail, run.side).observe(run.duration)
            if run.verdict == "block":
                self.blocks.labels(config_id, run.rail, run.side).inc()
            elif run.verdict == "error":
                self.rail_errors.labels(config_id, run.rail, run.side).inc()
        for call in ledger.llm_calls:
            self.llm_duration.labels(config_id, call.task, call.status).observe(call.duration)
            if call.task == "general" and call.streamed_tokens:
                self.tokens_generated.labels(config_id).inc(call.streamed_tokens)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
