"""engine: huggingface_pipeline with a real (tiny) model: GPT-2 with random weights and a
tokenizer trained here, saved, and loaded with transformers' pipeline. Real threads, so the
real clock: no sleeps, and a hang guard in real seconds."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from engine import LLMRails, RailsConfig  # noqa: E402
from stages.generation.huggingface import (  # noqa: E402
    AsyncTextIteratorStreamer,
    HuggingFacePipelineCompatible,
)

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


def test_a_block_stops_generation_within_one_token_and_leaves_no_thread(pipe: Any) -> None:
    llm = HuggingFacePipelineCompatible(
        pipeline=pipe, model_kwargs={**PARAMS, "max_new_tokens": 200, "min_new_tokens": 200}
    )
    rails = guarded(
        llm, ["stop early"], {"stop_early": lambda bot_message: False}, chunk_size=2, context_size=0
    )
    before = threading.active_count()
    for seed in range(3):
        torch.manual_seed(seed)
        chunks, log = stream(rails)
        assert json.loads(chunks[-1])["error"]["code"] == "content_blocked"
        assert llm.cancelled_at is not None
        assert llm.finished_at is not None  # the thread returned before the stream ended
        assert llm.finished_at - llm.cancelled_at <= 1  # at most the token in progress
        assert llm.finished_at < 200
        assert log.llm_calls[0].status == "cancelled"
    # trio keeps one idle worker thread to reuse; more runs add none.
    assert threading.active_count() - before <= 1


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
    from engine import ConfigError

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
    # Every generation thread has returned: only trio's idle cached workers may remain.
    busy = [
        t
        for t in threading.enumerate()
        if t.name.startswith("Trio thread") and "idle" not in repr(t).lower()
    ]
    assert len(busy) <= 1


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
