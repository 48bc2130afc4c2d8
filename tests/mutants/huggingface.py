"""``engine: huggingface_pipeline``: the promises of stages/generation/huggingface.py, broken."""

from __future__ import annotations

from tests.mutation_check import Mutation

HF = "stages/generation/huggingface.py"
TESTS = "tests/test_huggingface.py"

MUTATIONS = [
    Mutation(
        name="hf-cancel-flag-ignored",
        path=HF,
        old="                return cancel.is_set()",
        new="                return False",
        tests=(f"{TESTS}::test_a_cancel_stops_a_model_that_writes_tokens_flushing_no_text",),
        expect="assert (60 - 4) <= 1",
    ),
    Mutation(
        # The bug of issue 12: one streamer for every call, rebound by each.
        name="hf-streamer-shared-by-calls",
        path=HF,
        old="""        streamer = AsyncTextIteratorStreamer(
            self._tokenizer, skip_prompt=True, **self._decode_kwargs
        )""",
        new="""        streamer = self.__dict__.setdefault(
            "_shared", AsyncTextIteratorStreamer(self._tokenizer, skip_prompt=True)
        )""",
        tests=(f"{TESTS}::test_concurrent_calls_on_one_model_never_mix_their_tokens",),
        expect="assert replies == expected",
    ),
    Mutation(
        name="hf-cut-off-usage-not-reported",
        path=HF,
        old="            emit.report_usage(usage)\n",
        new="",
        tests=(f"{TESTS}::test_a_cut_off_call_records_the_tokens_counted_until_it_stopped",),
        expect="assert None == ",
    ),
    Mutation(
        name="stage-cut-off-usage-dropped",
        path="stages/generation/_stage.py",
        old='usage=outcome_usage if status == "completed" else emit.reported_usage,',
        new="usage=outcome_usage,",
        tests=(
            f"{TESTS}::test_a_cut_off_call_records_the_tokens_counted_until_it_stopped",
            "tests/test_stages.py::test_a_cut_off_call_is_recorded_with_the_counts_its_provider_reported",
        ),
    ),
    Mutation(
        # The device fixed to the CPU again, as before issue 12.
        name="hf-device-not-passed-to-the-pipeline",
        path=HF,
        old='transformers.pipeline("text-generation", model=model, tokenizer=model, **placement)',
        new='transformers.pipeline("text-generation", model=model, tokenizer=model, device="cpu")',
        tests=(
            f"{TESTS}::test_the_configs_device_loads_the_model_there_and_is_no_generation_parameter",
        ),
        expect="assert 'cpu' == 'meta'",
    ),
    Mutation(
        name="hf-device-left-in-the-generation-parameters",
        path=HF,
        old="generation = {k: v for k, v in parameters.items() if k not in LOAD_PARAMETERS}",
        new="generation = dict(parameters)",
        tests=(
            f"{TESTS}::test_the_configs_device_loads_the_model_there_and_is_no_generation_parameter",
        ),
        expect="assert 'failed' == 'completed'",
    ),
    Mutation(
        name="hf-load-failure-not-translated",
        path=HF,
        old="    except Exception as exc:\n        raise GenerationError(",
        new="    except ImportError as exc:\n        raise GenerationError(",
        tests=(f"{TESTS}::test_a_device_that_cannot_be_used_fails_at_load_saying_which",),
    ),
    Mutation(
        # transformers' silent fallback to the CPU for an accelerator index it cannot find.
        name="hf-missing-accelerator-accepted",
        path=HF,
        old='if isinstance(device, int) and device >= 0 and pipe.device.type == "cpu":',
        new="if False:",
        tests=(f"{TESTS}::test_a_device_that_cannot_be_used_fails_at_load_saying_which",),
        expect="DID NOT RAISE",
    ),
    Mutation(
        name="hf-device-and-device-map-both-accepted",
        path="config_schema/_engines.py",
        old="    if device is not None and device_map is not None:",
        new="    if False:",
        tests=(f"{TESTS}::test_a_device_of_the_wrong_kind_is_a_config_error",),
        expect="DID NOT RAISE",
    ),
    Mutation(
        name="hf-foreign-streamer-accepted",
        path=HF,
        old="if template is not None and not isinstance(template, _StreamerMixin):",
        new="if False:",
        tests=(
            f"{TESTS}::test_a_streamer_that_is_not_railstreams_or_streams_the_prompt_is_refused",
        ),
    ),
    Mutation(
        name="hf-prompt-streaming-streamer-accepted",
        path=HF,
        old="if template is not None and not template.skip_prompt:",
        new="if False:",
        tests=(
            f"{TESTS}::test_a_streamer_that_is_not_railstreams_or_streams_the_prompt_is_refused",
        ),
    ),
    Mutation(
        # A cancelled stream that stops waiting for its thread leaves a generation running.
        name="hf-thread-abandoned-on-cancel",
        path=HF,
        old="await trio.to_thread.run_sync(generate, abandon_on_cancel=False)",
        new="await trio.to_thread.run_sync(generate, abandon_on_cancel=True)",
        tests=(f"{TESTS}::test_a_block_stops_generation_within_one_token_and_leaves_no_thread",),
        expect="the stream ended while its generation thread still ran",
    ),
]
