"""What the server tells its operator: one log line per request, and Prometheus metrics.

- **The access log** (logger ``railstream.access``, INFO): one line per chat request when it
  ends: config, streamed or not, status, outcome (``completed``, ``blocked`` with the rail,
  ``rail_error``, ``model_error`` with the upstream's kind, ``client_left``, ``shutdown``,
  ``rejected`` with the status's reason), tokens generated, duration. Never message text, never
  a key: the fields are counts, names from the config, and error kinds.
- **Metrics** (``prometheus-client``, optional: ``pip install 'railstream[metrics]'``; without
  it there is no ``/metrics``): requests by config and outcome; blocks by rail; streams in
  flight; rail run and LLM call durations; time to first chunk; each released chunk's latency (from its oldest and its newest token's
arrival from the model); tokens generated, chunks released;
  upstream errors by kind. Every label value is bounded: a config id, a rail or task name from
  the config, an outcome or error kind from a fixed set; never user text or request ids.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import attrs
import trio

from railstream.facade import ChunkLatency
from railstream.stages import UsageLedger

__all__ = ["JsonFormatter", "Metrics", "RequestRecord", "metrics_available"]

access_logger = logging.getLogger("railstream.access")

# The pipeline's channels (railstream.runtime._pipeline.CHANNEL_CAPACITY), as PipelineStatistics names them.
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


_CHANNEL_ITEMS = "Items waiting in the streams' pipeline channels, by channel."
_CHANNEL_CAPACITY = "Room in the streams' pipeline channels, by channel (capacity x streams)."

# Seconds: from a fast rail (a regex) to a slow judge or model call.
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


# Seconds: a chunk released at once is well under a millisecond old; a held window's oldest
# token waits for the window to fill and for its check.
_CHUNK_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
)  # fmt: skip


# A worker of ``--workers`` samples its streams' channels this often (see Metrics.multiprocess).
CHANNEL_SAMPLE_S = 1.0


class Metrics:
    """The server's Prometheus metrics, in a registry of its own (``/metrics`` serves it).

    Under ``--workers`` (``PROMETHEUS_MULTIPROC_DIR`` set by the parent, before
    prometheus-client is imported) each worker writes its values to files in that directory
    and ``/metrics``, whichever worker answers, serves them all added up: a scrape never sees
    one worker's counts, which would go up and down as scrapes reach different workers. The
    channel gauges are then sampled by each worker every ``CHANNEL_SAMPLE_S`` (and by the one
    answering, as it answers): no worker can see another's streams.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        self._streams: Callable[[], Iterable[Any]] = list
        self._gauges: tuple[dict[str, Any], dict[str, Any]] | None = None  # --workers' channels
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
            "railstream_streams_in_flight",
            "Streamed replies being written now.",
            registry=r,
            multiprocess_mode="livesum",
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
        self.chunk_latency = Histogram(
            "railstream_chunk_latency_seconds",
            "A released text chunk's time inside railstream, from its oldest (token=oldest) and "
            "its newest (token=newest) token's arrival from the model to its release to the "
            "client connection.",
            ["config", "token"],
            buckets=_CHUNK_BUCKETS,
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
        """Gauges of the pipeline channels of the streams ``streams()`` gives (each with
        ``.statistics()``): how many items wait in each channel, over all streams, and how many
        could. A channel near full is where streams wait (backpressure). Read at scrape time;
        under ``--workers``, sampled (see the class)."""
        self._streams = streams
        if self.multiprocess:
            from prometheus_client import Gauge

            used = Gauge(
                "railstream_channel_items",
                _CHANNEL_ITEMS,
                ["channel"],
                registry=self.registry,
                multiprocess_mode="livesum",
            )
            room = Gauge(
                "railstream_channel_capacity",
                _CHANNEL_CAPACITY,
                ["channel"],
                registry=self.registry,
                multiprocess_mode="livesum",
            )
            self._gauges = (
                {name: used.labels(name) for name in CHANNELS},
                {name: room.labels(name) for name in CHANNELS},
            )
            self.sample_channels()
            return

        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.registry import Collector

        totals = self._channel_totals

        class Channels(Collector):
            def collect(self) -> Iterator[GaugeMetricFamily]:
                used = GaugeMetricFamily(
                    "railstream_channel_items", _CHANNEL_ITEMS, labels=["channel"]
                )
                room = GaugeMetricFamily(
                    "railstream_channel_capacity", _CHANNEL_CAPACITY, labels=["channel"]
                )
                for name, (items, capacity) in totals().items():
                    used.add_metric([name], items)
                    room.add_metric([name], capacity)
                yield used
                yield room

        self.registry.register(Channels())

    def _channel_totals(self) -> dict[str, list[int]]:
        totals = {name: [0, 0] for name in CHANNELS}
        for stream in self._streams():
            statistics = stream.statistics()
            for name in CHANNELS:
                channel = getattr(statistics, name)
                totals[name][0] += channel.current_buffer_used
                totals[name][1] += channel.max_buffer_size
        return totals

    def sample_channels(self) -> None:
        """Under ``--workers``: this worker's channel totals, into its gauges' files."""
        if self._gauges is None:
            return
        used, room = self._gauges
        for name, (items, capacity) in self._channel_totals().items():
            used[name].set(items)
            room[name].set(capacity)

    async def sample_channels_every(self, seconds: float) -> None:
        while True:
            await trio.sleep(seconds)
            self.sample_channels()

    def chunk_latency_of(self, config_id: str) -> Callable[[ChunkLatency | None], None]:
        """What observes each released chunk's latency for one streamed reply (the labelled
        histograms looked up once per reply, not per chunk)."""
        oldest = self.chunk_latency.labels(config_id, "oldest")
        newest = self.chunk_latency.labels(config_id, "newest")

        def observe(latency: ChunkLatency | None) -> None:
            if latency is not None:
                oldest.observe(latency.oldest_s)
                newest.observe(latency.newest_s)

        return observe

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
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        self.sample_channels()  # this worker's, as of now; the others' as of their last sample
        every_worker = CollectorRegistry()
        MultiProcessCollector(every_worker)  # type: ignore[no-untyped-call]
        return generate_latest(every_worker), CONTENT_TYPE_LATEST
