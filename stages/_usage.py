"""The usage stage: one record per LLM call and per rail run, gathered into a ledger."""

from __future__ import annotations

import attrs
import trio

from ._messages import LLMCall, LogRecord, RailRun, Usage

__all__ = ["MAX_LOG_TEXT_CHARS", "MAX_TEXT_CHARS", "UsageLedger", "run_usage"]

# A judge call's prompt holds its window's text, so a long reply's log would grow with the
# reply. Each prompt or completion is kept up to MAX_TEXT_CHARS, and a stream's ledger keeps
# MAX_LOG_TEXT_CHARS of such text in all; past that, calls are kept with their counts only.
MAX_TEXT_CHARS = 8_192
MAX_LOG_TEXT_CHARS = 262_144


@attrs.define
class UsageLedger:
    """Everything a stream did: its LLM calls and its rail runs, in the order they ended.

    Its text is bounded (see :data:`MAX_LOG_TEXT_CHARS`); ``texts_cut`` counts the prompts
    and completions shortened or dropped to stay within it.
    """

    llm_calls: list[LLMCall] = attrs.field(factory=list)
    rail_runs: list[RailRun] = attrs.field(factory=list)
    texts_cut: int = 0
    _text_budget: int = MAX_LOG_TEXT_CHARS

    def add(self, record: LogRecord) -> None:
        if isinstance(record, LLMCall):
            if record.prompt is not None or record.completion is not None:
                record = attrs.evolve(
                    record,
                    prompt=self._keep(record.prompt),
                    completion=self._keep(record.completion),
                )
            self.llm_calls.append(record)
        else:
            self.rail_runs.append(record)

    def _keep(self, text: str | None) -> str | None:
        if text is None:
            return None
        allowed = min(len(text), MAX_TEXT_CHARS, self._text_budget)
        self._text_budget -= allowed
        if allowed == len(text):
            return text
        self.texts_cut += 1
        if allowed == 0:
            return None
        return f"{text[:allowed]}... [{len(text) - allowed} more characters not kept]"

    def main_call(self) -> LLMCall | None:
        """The record of the main generation (the first call that is not a rail's)."""
        return next((c for c in self.llm_calls if c.task == "general"), None)

    def main_usage(self) -> Usage:
        call = self.main_call()
        return call.usage if call is not None else Usage()


async def run_usage(inbox: trio.MemoryReceiveChannel[LogRecord], ledger: UsageLedger) -> None:
    """Record every log record until the last sender closes its end, even when cancelled.

    A caller cancelled from outside cancels this stage with the others; the records the others
    send as they stop (the model call cut off, the rail run cut off) must still be kept. So this
    stage is shielded: it ends once the other stages, cancelled too, have closed their ends.
    """
    with inbox, trio.CancelScope(shield=True):
        async for record in inbox:
            ledger.add(record)
