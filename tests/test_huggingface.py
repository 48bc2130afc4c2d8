"""engine: huggingface_pipeline with a real (tiny) model: GPT-2 with random weights and a
tokenizer trained here, saved, and loaded with transformers' pipeline. Real threads, so the
real clock: no sleeps, and a hang guard in real seconds."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from railstream import GenerationError, LLMRails, RailsConfig  # noqa: E402
from railstream.huggingface import (  # noqa: E402
    AsyncTextIteratorStreamer,
    HuggingFacePipelineCompatible,
)
from railstream.stages.generation.huggingface import huggingface_provider  # noqa: E402

HANG_GUARD_S = 120
USER = [{"role": "user", "content": "tell me about the fox"}]
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "guardrails check the stream while it is written",
    "a secret key must never leak to the user",
    "streaming tokens arrive one after another",
] * 25


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    # Word-level: each token is a word and decodes with a space, so the streamer (which
    # flushes at word boundaries) hands on text word by word, as with a real model.
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.train_from_iterator(
        CORPUS, trainers.WordLevelTrainer(special_tokens=["<unk>", "<eos>"])
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<eos>", unk_token="<unk>", pad_token="<eos>"
    )
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(fast),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pipe(model_dir: Path) -> Any:
    return transformers.pipeline(
        "text-generation", model=str(model_dir), tokenizer=str(model_dir), device="cpu"
    )


# Sampling (seeded) rather than greedy: a random model's greedy text repeats one token.
PARAMS = {
    "max_new_tokens": 60,
    "min_new_tokens": 60,
    "do_sample": True,
    "temperature": 1.0,
    "top_k": 0,
}


def stream(rails: LLMRails, **kwargs: Any) -> tuple[list[str], Any]:
    async def main() -> tuple[list[str], Any]:
        with trio.fail_after(HANG_GUARD_S):
            async with rails.stream_async(messages=USER, **kwargs) as s:
                chunks = [c async for c in s]
            return chunks, s.log

    return trio.run(main)


def guarded(
    llm: HuggingFacePipelineCompatible,
    flows: list[str] | None = None,
    actions: dict[str, Any] | None = None,
    **streaming: Any,
) -> LLMRails:
    doc = {
        "rails": {
            "output": {
                "flows": flows or [],
                "streaming": {
                    "enabled": True,
                    "stream_first": False,
                    "chunk_size": 4,
                    "context_size": 1,
                    **streaming,
                },
            }
        }
    }
    rails = LLMRails(RailsConfig.from_content(yaml_content=json.dumps(doc)), llm=llm)
    for name, fn in (actions or {}).items():
        rails.register_action(fn, name)
    return rails


def test_the_seeds_snippet_streams_the_exact_text_of_a_plain_run_with_the_same_seed(
    pipe: Any,
) -> None:
    torch.manual_seed(11)
    plain = pipe("user: tell me about the fox\nassistant:", return_full_text=False, **PARAMS)[0][
        "generated_text"
    ]

    # As the seeds show, with the import changed:
    streamer = AsyncTextIteratorStreamer(pipe.tokenizer, skip_prompt=True)
    params = {**PARAMS, "streamer": streamer}
    llm = HuggingFacePipelineCompatible(pipeline=pipe, model_kwargs=params)

    seen: list[str] = []
    rails = guarded(llm, ["watch"], {"watch": lambda bot_message: seen.append(bot_message) or True})
    torch.manual_seed(11)
    chunks, log = stream(rails)
    assert "".join(chunks) == plain
    assert len(chunks) > 1  # streamed, not in one piece
    assert len(seen) > 1  # and checked window by window
    call = log.llm_calls[0]
    assert call.completion_tokens == 60  # every generated token id, counted by the streamer
    assert call.prompt_tokens == len(
        pipe.tokenizer("user: tell me about the fox\nassistant:")["input_ids"]
    )
    assert call.total_tokens == call.prompt_tokens + 60
    assert llm.finished_at == 60


class SlowTokens(transformers.StoppingCriteria):  # type: ignore[misc]
    """Makes each token take 50 ms: a stream that stopped waiting for its generation thread
    would end while the thread still runs, which the test then sees."""

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
        time.sleep(0.05)
        return False


def test_a_block_stops_generation_within_one_token_and_leaves_no_thread(pipe: Any) -> None:
    llm = HuggingFacePipelineCompatible(
        pipeline=pipe,
        model_kwargs={
            **PARAMS,
            "max_new_tokens": 200,
            "min_new_tokens": 200,
            "stopping_criteria": [SlowTokens()],
        },
    )
    rails = guarded(
        llm, ["stop early"], {"stop_early": lambda bot_message: False}, chunk_size=2, context_size=0
    )
    before = threading.active_count()
    for seed in range(3):
        torch.manual_seed(seed)
        chunks, log = stream(rails)
        running = [t.name for t in threading.enumerate() if t.name.startswith("generate from ")]
        assert running == [], "the stream ended while its generation thread still ran"
        assert json.loads(chunks[-1])["error"]["code"] == "content_blocked"
        assert llm.cancelled_at is not None
        assert llm.finished_at is not None  # the thread returned before the stream ended
        assert llm.finished_at - llm.cancelled_at <= 1  # at most the token in progress
        assert llm.finished_at < 200
        assert log.llm_calls[0].status == "cancelled"
    # trio keeps idle worker threads to reuse: one for generation and one for the sync rail
    # that ran beside it; more runs add none.
    assert threading.active_count() - before <= 2


def test_a_consumer_that_closes_stops_generation_within_one_token(pipe: Any) -> None:
    llm = HuggingFacePipelineCompatible(
        pipeline=pipe, model_kwargs={**PARAMS, "max_new_tokens": 200, "min_new_tokens": 200}
    )
    rails = guarded(llm)

    async def main() -> None:
        with trio.fail_after(HANG_GUARD_S):
            s = rails.stream_async(messages=USER)
            await s.__anext__()
            await s.aclose()

    torch.manual_seed(5)
    trio.run(main)
    assert llm.cancelled_at is not None
    assert llm.finished_at is not None
    assert llm.finished_at - llm.cancelled_at <= 1
    assert llm.finished_at < 200


def test_a_failing_pipeline_ends_the_stream_with_a_generation_error(pipe: Any) -> None:
    llm = HuggingFacePipelineCompatible(pipeline=pipe, model_kwargs={"max_new_tokens": "many"})
    chunks, _ = stream(guarded(llm))
    error = json.loads(chunks[-1])["error"]
    assert error["type"] == "generation_error"
    assert error["message"].startswith("the pipeline failed: ")


def test_the_engine_from_config_loads_a_model_path(model_dir: Path) -> None:
    doc = {
        "models": [
            {
                "type": "main",
                "engine": "huggingface_pipeline",
                "model": str(model_dir),
                "parameters": {**PARAMS, "max_new_tokens": 20, "min_new_tokens": 20},
            }
        ],
    }
    rails = LLMRails(RailsConfig.from_content(yaml_content=json.dumps(doc)))
    torch.manual_seed(1)
    chunks, log = stream(rails)
    assert "".join(chunks)
    assert log.llm_calls[0].completion_tokens == 20
    assert log.llm_calls[0].llm_provider_name == "huggingface_pipeline"


def test_a_config_without_a_model_path_is_refused() -> None:
    from railstream import ConfigError

    with pytest.raises(
        ConfigError,
        match=r"models\[0\]\.model: required for engine huggingface_pipeline: a local model path$",
    ):
        RailsConfig.from_content(
            yaml_content="models: [{type: main, engine: huggingface_pipeline, parameters: {streamer: x}}]"
        )


@pytest.fixture(autouse=True)
def _no_threads_left_running() -> Iterator[None]:
    yield
    # Every generation thread has returned. trio names a worker after its job while it runs
    # ("generate from <task>") and renames it before the job's caller resumes, so a thread
    # still so named is a generation that outlived its stream; idle cached workers are not.
    assert [t.name for t in threading.enumerate() if t.name.startswith("generate from ")] == []


def test_your_own_stopping_criteria_apply_beside_railstreams(pipe: Any) -> None:
    class StopAfter(transformers.StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            return bool(input_ids.shape[-1] >= self.limit)

    prompt_tokens = len(pipe.tokenizer("user: tell me about the fox\nassistant:")["input_ids"])
    stop = StopAfter()
    stop.limit = prompt_tokens + 7
    params = {
        **PARAMS,
        "min_new_tokens": 0,
        "stopping_criteria": transformers.StoppingCriteriaList([stop]),
    }
    llm = HuggingFacePipelineCompatible(pipeline=pipe, model_kwargs=params)
    torch.manual_seed(2)
    _, log = stream(guarded(llm))
    assert log.llm_calls[0].completion_tokens == 7  # not the 60 of max_new_tokens


def test_return_full_text_is_refused_not_ignored(pipe: Any) -> None:
    with pytest.raises(ValueError, match=r"^return_full_text=True would stream the prompt back"):
        HuggingFacePipelineCompatible(pipeline=pipe, model_kwargs={"return_full_text": True})


# Greedy, every step a word: a deterministic reply that differs from prompt to prompt (a
# random model's greedy text otherwise repeats a word or writes <unk>, which is no text).
DISTINCT = {
    "max_new_tokens": 30,
    "min_new_tokens": 30,
    "do_sample": False,
    "no_repeat_ngram_size": 2,
    "suppress_tokens": [0],  # <unk>
}
PROMPTS = [
    [{"role": "user", "content": "tell me about the fox"}],
    [{"role": "user", "content": "a secret key must never leak"}],
]


def prompt_text(messages: list[dict[str, str]]) -> str:
    # What the provider makes of a conversation for a tokenizer with no chat template.
    return "\n".join([*(f"{m['role']}: {m['content']}" for m in messages), "assistant:"])


class Lockstep(transformers.StoppingCriteria):  # type: ignore[misc]
    """Holds each generation after every token until the other has written its own: two
    calls whose tokens strictly alternate, so a streamer they shared would mix them."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=30)
        self.steps = 0

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
        if self.barrier.wait() == 0:
            self.steps += 1
        return False


@pytest.mark.parametrize("callers", ["two threads calling generate()", "two trio streams"])
def test_concurrent_calls_on_one_model_never_mix_their_tokens(pipe: Any, callers: str) -> None:
    expected = [
        pipe(prompt_text(m), return_full_text=False, **DISTINCT)[0]["generated_text"]
        for m in PROMPTS
    ]
    assert expected[0] != expected[1]
    lockstep = Lockstep()
    llm = HuggingFacePipelineCompatible(
        pipeline=pipe, model_kwargs={**DISTINCT, "stopping_criteria": [lockstep]}
    )
    rails = guarded(llm)
    options = {"log": {"llm_calls": True}}
    replies: list[str | None] = [None, None]
    calls: list[Any] = [None, None]

    if callers == "two threads calling generate()":

        def call(i: int) -> None:
            response = rails.generate(messages=PROMPTS[i], options=options)
            replies[i] = response.response[0]["content"]
            calls[i] = response.log.llm_calls[0]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD_S)
        assert not any(t.is_alive() for t in threads)
    else:

        async def main() -> None:
            async def one(i: int) -> None:
                async with rails.stream_async(messages=PROMPTS[i]) as s:
                    replies[i] = "".join([c async for c in s])
                calls[i] = s.log.llm_calls[0]

            with trio.fail_after(HANG_GUARD_S):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(one, 0)
                    nursery.start_soon(one, 1)

        trio.run(main)

    assert lockstep.steps == 30  # the two generations ran side by side, token for token
    assert replies == expected
    for messages, call in zip(PROMPTS, calls, strict=True):
        assert call.status == "completed"
        assert call.prompt_tokens == len(pipe.tokenizer(prompt_text(messages))["input_ids"])
        assert call.completion_tokens == 30


def test_a_streamer_that_is_not_railstreams_or_streams_the_prompt_is_refused(pipe: Any) -> None:
    with pytest.raises(
        ValueError, match=r"^streamer must be railstream's AsyncTextIteratorStreamer"
    ):
        HuggingFacePipelineCompatible(
            pipeline=pipe, model_kwargs={"streamer": transformers.TextStreamer(pipe.tokenizer)}
        )
    with pytest.raises(
        ValueError, match=r"^a streamer with skip_prompt=False would stream the prompt"
    ):
        HuggingFacePipelineCompatible(
            pipeline=pipe, model_kwargs={"streamer": AsyncTextIteratorStreamer(pipe.tokenizer)}
        )


def hf_config(model_dir: Path, **parameters: Any) -> RailsConfig:
    doc = {
        "models": [
            {
                "type": "main",
                "engine": "huggingface_pipeline",
                "model": str(model_dir),
                "parameters": parameters,
            }
        ],
    }
    return RailsConfig.from_content(yaml_content=json.dumps(doc))


def test_the_configs_device_loads_the_model_there_and_is_no_generation_parameter(
    model_dir: Path,
) -> None:
    # "meta" is the one device besides the CPU that every torch has: proof that the config's
    # device reaches pipeline(), where the CPU could be the default.
    assert huggingface_provider(str(model_dir), {"device": "meta"}).pipeline.device.type == "meta"
    # And it is taken out of the generation parameters, which transformers would refuse.
    config = hf_config(
        model_dir, device="cpu", **{**PARAMS, "max_new_tokens": 5, "min_new_tokens": 5}
    )
    torch.manual_seed(3)
    _, log = stream(LLMRails(config))
    (call,) = log.llm_calls
    assert call.status == "completed"
    assert call.completion_tokens == 5


@pytest.mark.parametrize(
    ("placement", "detail"),
    [
        pytest.param(
            {"device": "nosuch"}, r"RuntimeError: Expected one of cpu, cuda", id="unknown device"
        ),
        pytest.param(
            {"device": "cuda:0"}, r"AssertionError: Torch not compiled with CUDA", id="absent cuda"
        ),
        pytest.param(
            {"device": 0},
            r"torch finds no accelerator; set device: cpu \(or -1\) to run on the CPU$",
            id="accelerator index, no accelerator",
        ),
        pytest.param(
            {"device_map": "auto"}, r"ValueError: .*requires `accelerate`", id="device_map"
        ),
    ],
)
def test_a_device_that_cannot_be_used_fails_at_load_saying_which(
    model_dir: Path, placement: dict[str, Any], detail: str
) -> None:
    import importlib.util

    accelerated = torch.cuda.is_available() or torch.backends.mps.is_available()
    if accelerated and placement != {"device": "nosuch"}:
        pytest.skip("this device fails only where no accelerator exists")
    if "device_map" in placement and importlib.util.find_spec("accelerate"):
        pytest.skip("with accelerate installed, device_map loads")
    ((key, value),) = placement.items()
    config = hf_config(model_dir, **placement)
    with pytest.raises(GenerationError) as raised:
        LLMRails(config)  # at load, not at the first call
    assert re.match(
        rf"engine huggingface_pipeline could not load {re.escape(repr(str(model_dir)))} "
        rf"on {key}={re.escape(repr(value))}: .*{detail}",
        str(raised.value),
        re.DOTALL,
    ), str(raised.value)


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        pytest.param(
            {"device": True},
            "models[0].parameters.device: expected a device such as cpu, cuda:0 or an accelerator index, got a boolean",
            id="device",
        ),
        pytest.param(
            {"device_map": 3},
            "models[0].parameters.device_map: expected a strategy such as auto, or a mapping of modules to devices, got an integer",
            id="device_map",
        ),
        pytest.param(
            {"device": "cpu", "device_map": "auto"},
            "models[0].parameters.device_map: set device or device_map, not both",
            id="both",
        ),
    ],
)
def test_a_device_of_the_wrong_kind_is_a_config_error(
    parameters: dict[str, Any], problem: str
) -> None:
    from railstream import ConfigError

    doc = {
        "models": [
            {
                "type": "main",
                "engine": "huggingface_pipeline",
                "model": "m",
                "parameters": parameters,
            }
        ]
    }
    with pytest.raises(ConfigError, match=rf"^<yaml_content>:\d+: {re.escape(problem)}$"):
        RailsConfig.from_content(yaml_content=json.dumps(doc))


@pytest.mark.parametrize("cut_off_by", ["a block", "the consumer's close"])
def test_a_cut_off_call_records_the_tokens_counted_until_it_stopped(
    pipe: Any, cut_off_by: str
) -> None:
    llm = HuggingFacePipelineCompatible(
        pipeline=pipe, model_kwargs={**PARAMS, "max_new_tokens": 200, "min_new_tokens": 200}
    )
    if cut_off_by == "a block":
        rails = guarded(
            llm,
            ["stop early"],
            {"stop_early": lambda bot_message: False},
            chunk_size=2,
            context_size=0,
        )
    else:
        rails = guarded(llm)

    async def main() -> tuple[list[str], Any]:
        chunks: list[str] = []
        with trio.fail_after(HANG_GUARD_S):
            async with rails.stream_async(messages=USER) as s:
                async for chunk in s:
                    chunks.append(chunk)
                    if cut_off_by == "the consumer's close":
                        break
        return chunks, s.log

    torch.manual_seed(4)
    chunks, log = trio.run(main)
    if cut_off_by == "a block":
        assert json.loads(chunks[-1])["error"]["code"] == "content_blocked"
    (call,) = log.llm_calls
    assert call.status == "cancelled"
    assert call.prompt_tokens == len(
        pipe.tokenizer("user: tell me about the fox\nassistant:")["input_ids"]
    )
    # Every token id the model generated, counted by the streamer, up to the cancel.
    assert call.completion_tokens == llm.finished_at
    assert call.streamed_tokens <= call.completion_tokens < 200
    assert call.total_tokens == call.prompt_tokens + call.completion_tokens


def test_a_cancel_stops_a_model_that_writes_tokens_flushing_no_text(pipe: Any) -> None:
    # After four words the model writes only <unk>, which skip_special_tokens decodes to no
    # text: the streamer never calls into trio again, so nothing fails there, and only the
    # stopping criterion on the cancel flag can stop generation.
    words, unk, eos = 4, pipe.tokenizer.unk_token_id, pipe.tokenizer.eos_token_id
    cancelled = threading.Event()

    class Watched(HuggingFacePipelineCompatible):
        # Tells the model's thread that the cancel came (railstream sets cancelled_at right
        # after the cancel flag).
        @property  # type: ignore[override]
        def cancelled_at(self) -> int | None:
            return self._cancelled_at

        @cancelled_at.setter
        def cancelled_at(self, value: int | None) -> None:
            self._cancelled_at = value
            if value is not None:
                cancelled.set()

    class WordsThenSilence(transformers.LogitsProcessor):  # type: ignore[misc]
        # Four words, then <unk> only, from the first <unk> on only once the cancel came: the
        # cancel always finds the model generating, never already done.
        def __init__(self, prompt_tokens: int) -> None:
            self.prompt_tokens = prompt_tokens

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            scores = scores.clone()
            if input_ids.shape[-1] - self.prompt_tokens < words:
                scores[:, [unk, eos]] = -float("inf")
                return scores
            assert cancelled.wait(HANG_GUARD_S)
            scores[:] = -float("inf")
            scores[:, unk] = 0.0
            return scores

    prompt_tokens = len(pipe.tokenizer("user: tell me about the fox\nassistant:")["input_ids"])
    llm = Watched(
        pipeline=pipe,
        model_kwargs={
            **PARAMS,
            "max_new_tokens": 60,
            "min_new_tokens": 60,
            "logits_processor": transformers.LogitsProcessorList([WordsThenSilence(prompt_tokens)]),
        },
    )
    # The first window holds the four words: the block comes after the model has handed
    # them all on, so no later hand-off to trio exists that could fail instead of the flag.
    rails = guarded(
        llm,
        ["stop early"],
        {"stop_early": lambda bot_message: False},
        chunk_size=words,
        context_size=0,
    )
    torch.manual_seed(6)
    chunks, log = stream(rails)
    assert json.loads(chunks[-1])["error"]["code"] == "content_blocked"
    assert llm.cancelled_at == words
    assert llm.finished_at is not None
    assert llm.finished_at - llm.cancelled_at <= 1  # not the 60 of max_new_tokens
    assert log.llm_calls[0].completion_tokens == llm.finished_at
