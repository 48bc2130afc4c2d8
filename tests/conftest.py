import math
import os
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, settings

from railstream.stages._usercode import TrioUserCode

# A quick profile while developing; CI sets CI=true and gets the thorough one.
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile(
    "ci", max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


@pytest.fixture
def autojump_clock(monkeypatch: pytest.MonkeyPatch) -> trio.testing.MockClock:
    """pytest-trio's autojump clock, except that it holds still while railstream waits on a
    worker thread running the application's sync code (a sync rail): that wait is real work,
    not idleness, and jumping over it would time every sync rail out at once."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    in_flight = 0
    run_sync = TrioUserCode.run_sync

    async def run_sync_holding_the_clock(self: TrioUserCode, fn: Any) -> Any:
        nonlocal in_flight
        in_flight += 1
        clock.autojump_threshold = math.inf
        try:
            return await run_sync(self, fn)
        finally:
            in_flight -= 1
            if not in_flight:
                clock.autojump_threshold = 0

    monkeypatch.setattr(TrioUserCode, "run_sync", run_sync_holding_the_clock)
    return clock
