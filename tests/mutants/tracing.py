"""OpenTelemetry traces of each call (tests/test_tracing.py, issue 16)."""

from tests.mutation_check import Mutation

T = "tests/test_tracing.py::"
TREE = T + "test_a_blocked_streams_spans_are_a_tree_of_rails_and_llm_calls"

MUTATIONS = [
    Mutation(
        name="tracing: no spans",
        path="engine/facade/_llmrails.py",
        old="        if self._tracer is not None:\n            try:\n",
        new="        if False:\n            try:\n",
        tests=(TREE,),
    ),
    Mutation(
        name="tracing: the stream is not the application's span's child",
        path="engine/facade/_tracing.py",
        old="            context=parent,\n",
        new="            context=None,\n",
        tests=(TREE,),
    ),
    Mutation(
        name="tracing: a judge's call is not under its rail run",
        path="engine/facade/_tracing.py",
        old="            self._calls(calls, trace.set_span_in_context(span))\n",
        new="            self._calls(calls, in_stream)\n",
        tests=(TREE,),
    ),
    Mutation(
        name="tracing: a rail run's span does not hold its judge's",
        path="engine/facade/_tracing.py",
        old="                max([run.finished_at, *(c.finished_at for c in calls)]),\n",
        new="                run.finished_at,\n",
        tests=(TREE,),
    ),
    Mutation(
        name="tracing: no gen_ai usage",
        path="engine/facade/_tracing.py",
        old='        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens\n',
        new="        pass\n",
        tests=(TREE,),
    ),
    Mutation(
        name="tracing: the tracer_provider argument is ignored",
        path="engine/facade/_tracing.py",
        old='        self._tracer = trace.get_tracer("railstream", tracer_provider=tracer_provider)\n',
        new='        self._tracer = trace.get_tracer("railstream")\n',
        tests=(TREE,),
    ),
    Mutation(
        name="tracing: NeMo's tracing.enabled false ignored",
        path="engine/facade/_llmrails.py",
        old="        traced = config.tracing is None or config.tracing.enabled\n",
        new="        traced = True\n",
        tests=(T + "test_nemos_tracing_enabled_turns_a_configs_spans_on_or_off",),
    ),
]
