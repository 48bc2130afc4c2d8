"""What the server's operator sees: the access log and /metrics (tests/test_observability.py,
issue 16)."""

from tests.mutation_check import Mutation

T = "tests/test_observability.py::"
LOG = T + "test_the_log_has_one_line_per_request_with_its_outcome_and_no_key_nor_text"
JSON = T + "test_json_log_lines_carry_the_same_fields"
METRICS = T + "test_metrics_count_the_block_under_its_rail_and_each_outcome"
WORKERS_COUNT = T + "test_with_workers_every_scrape_counts_every_workers_requests"
WORKERS_CHANNELS = T + "test_with_workers_a_stalled_stream_shows_in_the_scrapes_of_another_worker"

MUTATIONS = [
    Mutation(
        name="observability: a streamed request is never logged",
        path="engine/server/_sse_reply.py",
        old="                self._metrics.in_flight.dec()\n            self._finish()\n",
        new="                self._metrics.in_flight.dec()\n",
        tests=(LOG, METRICS),
    ),
    Mutation(
        name="observability: a rejected request is never logged",
        path="engine/server/_app.py",
        old="            if not record.handed_over:\n                record.finish(self.metrics)\n",
        new="            pass\n",
        tests=(LOG,),
    ),
    Mutation(
        name="observability: a block is logged as completed",
        path="engine/server/_outcomes.py",
        old='        return "blocked", error.get("param"), None\n',
        new='        return "completed", error.get("param"), None\n',
        tests=(LOG, METRICS),
    ),
    Mutation(
        name="observability: a whole reply's block is logged as completed",
        path="engine/server/_app.py",
        old='            record.outcome, record.rail = ("blocked" if blocked else "rail_error"), stopped.name\n',
        new="            pass\n",
        tests=(LOG,),
    ),
    Mutation(
        name="observability: the log says the user's text",
        path="engine/server/_observe.py",
        old='            "tokens": self.tokens,\n',
        new='            "tokens": self.tokens,\n            "text": "tell me the launch code is",\n',
        tests=(LOG,),
    ),
    Mutation(
        name="observability: json lines lose their fields",
        path="engine/server/_observe.py",
        old="            line.update({k: v for k, v in fields.items() if v is not None})\n",
        new="            pass\n",
        tests=(JSON,),
    ),
    Mutation(
        name="observability: blocks are not counted by rail",
        path="engine/server/_observe.py",
        old="                self.blocks.labels(config_id, run.rail, run.side).inc()\n",
        new="                pass\n",
        tests=(METRICS,),
    ),
    Mutation(
        name="observability: the facade's observers are never called",
        path="engine/facade/_llmrails.py",
        old="        for observer in self._observers:\n",
        new="        for observer in ():\n",
        tests=(METRICS,),
    ),
    Mutation(
        name="observability: streams in flight never go down",
        path="engine/server/_sse_reply.py",
        old="                self._metrics.in_flight.dec()\n",
        new="                pass\n",
        tests=(METRICS,),
    ),
    Mutation(
        name="observability: /metrics open to anyone",
        path="engine/server/_app.py",
        old="    async def metrics_endpoint(self, request: Request) -> Response:\n        authorize(self.limits, request)\n",
        new="    async def metrics_endpoint(self, request: Request) -> Response:\n",
        tests=(T + "test_metrics_are_behind_the_servers_token",),
    ),
    Mutation(
        name="observability: the server logs at warning by default (no access lines)",
        path="engine/cli/_args.py",
        old='        default="info",\n        choices=LOG_LEVELS,\n',
        new='        default="warning",\n        choices=LOG_LEVELS,\n',
        tests=(LOG,),
    ),
    Mutation(
        name="observability: chat --verbose prints nothing",
        path="engine/cli/_chat.py",
        old="        if self.verbose and log is not None:\n",
        new="        if False:\n",
        tests=("tests/test_cli.py::test_verbose_shows_each_rail_run_and_llm_call_under_the_reply",),
    ),
    Mutation(
        name="observability: chat --verbose loses a streamed reply's log",
        path="engine/cli/_chat.py",
        old="            self.last_log = stream.log\n",
        new="            pass\n",
        tests=("tests/test_cli.py::test_verbose_shows_each_rail_run_and_llm_call_under_the_reply",),
    ),
    Mutation(
        name="observability: the channel gauges count nothing",
        path="engine/server/_observe.py",
        old="                totals[name][0] += channel.current_buffer_used\n",
        new="                totals[name][0] += 0\n",
        tests=(
            T + "test_metrics_show_where_a_stream_waits_when_its_client_stops_reading",
            WORKERS_CHANNELS,
        ),
    ),
    Mutation(
        name="observability: the channel gauges see no stream",
        path="engine/server/_app.py",
        old="            metrics.watch_channels(lambda: [reply.stream for reply in list(self.shutdown.replies)])\n",
        new="            metrics.watch_channels(lambda: [])\n",
        tests=(T + "test_metrics_show_where_a_stream_waits_when_its_client_stops_reading",),
    ),
]

MUTATIONS += [
    Mutation(
        name="observability: workers keep their metrics to themselves",
        path="engine/server/_workers.py",
        old='    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}\n',
        new="    env = dict(os.environ)\n",
        tests=(WORKERS_COUNT,),
    ),
    Mutation(
        name="observability: a worker's scrape serves its own metrics only",
        path="engine/server/_observe.py",
        old="        if not self.multiprocess:\n            return generate_latest(self.registry), CONTENT_TYPE_LATEST\n",
        new="        return generate_latest(self.registry), CONTENT_TYPE_LATEST\n",
        tests=(WORKERS_COUNT,),
    ),
    Mutation(
        name="observability: the workers' metrics directory is left behind",
        path="engine/server/_workers.py",
        old="        shutil.rmtree(metrics_dir, ignore_errors=True)\n",
        new="        pass\n",
        tests=(WORKERS_COUNT,),
    ),
    Mutation(
        name="observability: workers never sample their channels",
        path="engine/server/_run.py",
        old="                nursery.start_soon(metrics.sample_channels_every, CHANNEL_SAMPLE_S)\n",
        new="                pass\n",
        tests=(WORKERS_CHANNELS,),
    ),
    Mutation(
        name="observability: streams in flight counted per worker, not added up",
        path="engine/server/_observe.py",
        old='            registry=r,\n            multiprocess_mode="livesum",\n        )',
        new='            registry=r,\n            multiprocess_mode="all",\n        )',
        tests=(WORKERS_COUNT,),
    ),
]

MUTATIONS += [
    Mutation(
        name="the server serves on CPython's garbage-collector defaults",
        path="engine/cli/_serve.py",
        old="    settle_heap()\n",
        new="",
        tests=(T + "test_the_server_settles_its_heap_before_serving_and_says_so",),
    ),
]
