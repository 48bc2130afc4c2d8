"""The usage stage: one record per LLM call and per rail run, gathered into a ledger."""

from __future__ import annotations

import attrs
import trio

from engine.messages import LLMCall, LogRecord, RailRun, Usage

__all__ = ["UsageLedger", "run_usage"]


@attrs.define
class UsageLedger:
    """Everything a stream did: its LLM calls and its rail runs, in the order they ended."""

    llm_calls: list[LLMCall] = attrs.field(factory=list)
    rail_runs: list[RailRun] = attrs.field(factory=list)

    def add(self, record: LogRecord) -> None:
        if isinstance(record, LLMCall):
            self.llm_calls.append(record)
        else:
            self.rail_runs.append(record)

    def main_call(self) -> LLMCall | None:
        """The record of the main generation (the first call that is not a rail's)."""
        return next((c for c in self.llm_calls if c.task == "general"), None)

    def main_usage(self) -> Usage:
        call = self.main_call()
        return call.usage if call is not None else Usage()


async def run_usage(inbox: trio.MemoryReceiveChannel[LogRecord], ledger: UsageLedger) -> None:
    """Record every log record until the last sender closes its end."""
    with inbox:
        async for record in inbox:
            ledger.add(record)
