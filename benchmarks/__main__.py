"""railstream side by side with the floor and NeMo Guardrails: ``python -m benchmarks``.

    python -m benchmarks --setup-nemo      # once: NeMo Guardrails 0.24.1 in .bench/nemo-venv
    python -m benchmarks [--quick] [--out DIR]

A local OpenAI-compatible server (tests/openai_server.py) runs in its own process, pinned to
one core; every measurement is a fresh client process (benchmarks/client.py) pinned to the
other, for: the floor (a plain httpx loop), railstream (no rails; 200/50 stream_first true and
false; 32/8) and NeMo Guardrails (same configs, a rail action doing the same work). Each token
the server writes carries its send time (time.monotonic_ns()), so latency per chunk is receive
time minus send time for the same token. Writes results.json, report.md and PNG plots.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.cores import pin

ROOT = Path(__file__).resolve().parent.parent
NEMO_VENV = ROOT / ".bench" / "nemo-venv"
CLIENT = ROOT / "benchmarks" / "client.py"

RAILS = {
    "200/50 first": {"chunk_size": 200, "context_size": 50, "stream_first": True},
    "200/50 hold": {"chunk_size": 200, "context_size": 50, "stream_first": False},
    "32/8 first": {"chunk_size": 32, "context_size": 8, "stream_first": True},
}


def setup_nemo() -> None:
    """NeMo Guardrails 0.24.1 in its own venv, so its dependencies never meet railstream's."""
    subprocess.run([sys.executable, "-m", "venv", str(NEMO_VENV)], check=True)
    subprocess.run(
        [str(NEMO_VENV / "bin" / "pip"), "install", "-q", "nemoguardrails==0.24.1"], check=True
    )
    print(f"NeMo Guardrails installed in {NEMO_VENV}")


def nemo_python() -> str | None:
    python = NEMO_VENV / "bin" / "python"
    if not python.exists():
        return None
    ok = subprocess.run(
        [str(python), "-c", "import nemoguardrails"], capture_output=True, check=False
    )
    return str(python) if ok.returncode == 0 else None


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Bench:
    def __init__(self, quick: bool, out: Path, gc_gen0: int | None = None) -> None:
        self.quick = quick
        self.gc_gen0 = gc_gen0
        self.out = out
        self.nemo = nemo_python()
        self.results: list[dict[str, Any]] = []
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.openai_server"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=pin(0),
        )
        assert self.server.stdout is not None
        self.base = f"http://127.0.0.1:{self.server.stdout.readline().strip()}"

    def close(self) -> None:
        self.server.kill()
        self.server.wait()

    def systems(
        self, rails: list[str], floor: bool = True, plain: bool = False
    ) -> list[tuple[str, str, dict[str, Any] | None]]:
        found: list[tuple[str, str, dict[str, Any] | None]] = []
        if floor:
            found.append(("floor", "floor", None))
        if plain:
            found.append(("railstream", "railstream", None))
        found += [(f"railstream {r}", "railstream", RAILS[r]) for r in rails]
        if self.nemo:
            found += [(f"nemo {r}", "nemo", RAILS[r]) for r in rails]
        return found

    def run(
        self, scenario: str, label: str, system: str, spec: dict[str, Any], step: str
    ) -> dict[str, Any]:
        python = self.nemo if system == "nemo" else sys.executable
        assert python is not None
        spec = {"system": system, "base_url": f"{self.base}/v1", "gc_gen0": self.gc_gen0, **spec}
        started = time.perf_counter()
        print(f"{step} {scenario:12} {label:28}", end=" ", file=sys.stderr, flush=True)
        done = subprocess.run(
            [python, str(CLIENT), json.dumps(spec)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            preexec_fn=pin(1),
            check=False,
        )
        if done.returncode != 0:
            print("failed", file=sys.stderr)
            raise RuntimeError(f"{label} failed:\n{done.stderr[-3000:]}")
        print(f"{time.perf_counter() - started:5.1f} s", file=sys.stderr)
        data = json.loads(done.stdout.strip().splitlines()[-1])
        data.update(scenario=scenario, label=label, system=system)
        return data

    def server_last(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}/_stats/last") as reply:
            return json.loads(reply.read())[0]  # type: ignore[no-any-return]

    def plan(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        q = self.quick
        long = 500 if q else 2000
        every = list(RAILS)
        runs: list[tuple[str, str, str, dict[str, Any]]] = []
        # CPU per token is what drifts most between runs on a shared VM: every system runs
        # once per round, rounds in turn, and ratios are taken within a round.
        for round_ in range(3 if q else 5):
            for label, system, rails in self.systems(every, plain=True):
                runs.append(
                    (
                        "throughput",
                        label,
                        system,
                        {
                            "model": "bench:tokens=2000:delay=0",
                            "streams": 1,
                            "rails": rails,
                            "warmup": 1,
                            "repeat": 3 if q else 5,
                            "round": round_,
                        },
                    )
                )
        # Latency too: one noisy minute on this VM moved every system's p90 tenfold.
        for round_ in range(1 if q else 3):
            for label, system, rails in self.systems(every, plain=True):
                runs.append(
                    (
                        "latency",
                        label,
                        system,
                        {
                            "model": f"bench:tokens={long}:delay=0.001",
                            "streams": 1,
                            "rails": rails,
                            "warmup": 1,
                            "round": round_,
                        },
                    )
                )
        # The targets' loads (100 and 500 streams) in rounds too: the floor's own figures
        # there moved by half between two runs an hour apart on this VM.
        for n in (100, 300) if q else (100, 500, 1000):
            for round_ in range(1 if q or n > 500 else 3):
                for label, system, rails in self.systems(["200/50 first"]):
                    runs.append(
                        (
                            f"concurrency {n}",
                            label,
                            system,
                            {
                                "model": "bench:tokens=200:delay=0",
                                "streams": n,
                                "rails": rails,
                                "round": round_,
                            },
                        )
                    )
        for label, system, rails in self.systems(["200/50 first", "200/50 hold"], floor=False):
            runs.append(
                (
                    "block",
                    label,
                    system,
                    {
                        "model": f"bench:tokens={long}:delay=0.001:forbidden={long // 2}",
                        "streams": 1,
                        "rails": rails,
                    },
                )
            )
        for label, system, rails in self.systems(["200/50 first"], plain=True):
            runs.append(
                (
                    "close",
                    label,
                    system,
                    {
                        "model": f"bench:tokens={long}:delay=0.001",
                        "streams": 1,
                        "rails": rails,
                        "close_after": 100,
                    },
                )
            )
        slow = {**RAILS["200/50 hold"], "rail_ms": 300}
        runs.append(
            (
                "slow rail",
                "railstream 200/50 hold, 4 checks",
                "railstream",
                {
                    "model": f"bench:tokens={long}:delay=0.001",
                    "streams": 1,
                    "rails": {**slow, "max_concurrent_checks": 4},
                },
            )
        )
        runs.append(
            (
                "slow rail",
                "railstream 200/50 hold, 1 check",
                "railstream",
                {
                    "model": f"bench:tokens={long}:delay=0.001",
                    "streams": 1,
                    "rails": {**slow, "max_concurrent_checks": 1},
                },
            )
        )
        if self.nemo:
            runs.append(
                (
                    "slow rail",
                    "nemo 200/50 hold",
                    "nemo",
                    {"model": f"bench:tokens={long}:delay=0.001", "streams": 1, "rails": slow},
                )
            )
        return runs

    def measure(self) -> None:
        runs = self.plan()
        for i, (scenario, label, system, spec) in enumerate(runs, 1):
            data = self.run(scenario, label, system, spec, f"[{i:>2}/{len(runs)}]")
            if scenario in ("block", "close"):
                data["server"] = self.server_last()
            self.results.append(summarize(data, spec))
        self.results = aggregate(self.results)


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per scenario and system, from its rounds: the median of each figure, and the
    median of its difference from (latency) or ratio to (CPU) the floor's in the same round.
    The latency CDF plots the round with the median p50."""
    floors = {(r["scenario"], r["round"]): r for r in rows if r["system"] == "floor"}
    merged: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        merged.setdefault((row["scenario"], row["system"]), []).append(row)
    out = []
    for (scenario, _), group in merged.items():
        row = dict(group[0])
        row["rounds"] = len(group)
        for key in ("tokens_per_s", "cpu_us_per_token", "wall_s", "peak_rss_mib"):
            row[key] = _median([g[key] for g in group])
        row["rss_per_stream_kib"] = _median([g["rss_per_stream_kib"] for g in group])
        for key in ("latency_ms", "oldest_ms", "first_chunk_ms"):
            row[key] = {q: _median([g[key][q] for g in group]) for q in group[0][key]}
        row["failed"] = sum(g["failed"] for g in group)
        paired = [(g, floors.get((scenario, g["round"]))) for g in group]
        paired = [(g, f) for g, f in paired if f is not None]
        if scenario == "throughput" and paired:
            row["cpu_x_floor"] = _median(
                [g["cpu_us_per_token"] / f["cpu_us_per_token"] for g, f in paired]
            )
            row["cpu_us_per_token_rounds"] = [g["cpu_us_per_token"] for g in group]
        if scenario.startswith("concurrency") and paired:
            # Each figure against the floor's of the same round, then the median of those.
            row["x_floor"], row["x_floor_rounds"] = {}, {}
            for key in _CONCURRENCY_RATIOS:
                ratios = [
                    _ratio(_figure(g, key), _figure(f, key))
                    for g, f in paired
                    if _ratio(_figure(g, key), _figure(f, key)) is not None
                ]
                row["x_floor"][key] = _median(ratios)
                row["x_floor_rounds"][key] = ratios
        if scenario == "latency" and paired:
            row["p50_minus_floor_ms"] = _median(
                [g["latency_ms"]["p50"] - f["latency_ms"]["p50"] for g, f in paired]
            )
            row["p50_rounds_ms"] = [g["latency_ms"]["p50"] for g in group]
            by_p50 = sorted(group, key=lambda g: g["latency_ms"]["p50"])
            row["latencies_ms"] = by_p50[len(by_p50) // 2]["latencies_ms"]
        row.pop("round", None)
        out.append(row)
    return out


_CONCURRENCY_RATIOS = (
    "tokens_per_s",
    "first_chunk_ms.p50",
    "cpu_us_per_token",
    "rss_per_stream_kib",
)


def _figure(row: dict[str, Any], key: str) -> Any:
    value: Any = row
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _ratio(value: Any, floor: Any) -> float | None:
    return value / floor if value is not None and floor else None


def _median(values: list[Any]) -> Any:
    present = [v for v in values if v is not None and v == v]
    return statistics.median(present) if present else None


def expected_tokens(model: str) -> int | None:
    """The stamping server's reply length, from the model name (``bench:tokens=200:...``)."""
    found = re.search(r"tokens=(\d+)", model)
    return int(found.group(1)) if found else None


def completed(stream: dict[str, Any], spec: dict[str, Any]) -> bool:
    """A request that did what it was asked: no exception, no error chunk, and every token
    (where the scenario lets the reply run to its end)."""
    if stream.get("error") is not None:
        return False
    if "forbidden=" in spec["model"] or spec.get("close_after") is not None:
        return True  # a block, a close: cut short on purpose
    if stream["blocked_ns"] is not None:
        return False
    return stream["tokens"] == expected_tokens(spec["model"])


def summarize(data: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    every = data["streams"]
    # Failed requests are not throughput: their tokens are not counted, and their number is.
    streams = [s for s in every if completed(s, spec)]
    tokens = sum(s["tokens"] for s in streams)
    latencies = [v / 1e6 for s in streams for v in s["latencies_ns"]]
    oldest = [v / 1e6 for s in streams for v in s.get("oldest_ns", [])]
    firsts = [s["first_chunk_ns"] / 1e6 for s in streams if s["first_chunk_ns"] is not None]
    row: dict[str, Any] = {
        "scenario": data["scenario"],
        "round": spec.get("round"),
        "system": data["label"],
        "streams": len(every),
        "failed": len(every) - len(streams),
        "errors": sorted({s["error"] for s in every if s.get("error")})[:3],
        "tokens": tokens,
        "wall_s": data["wall_s"],
        "tokens_per_s": tokens / data["wall_s"] if data["wall_s"] else None,
        "cpu_us_per_token": data["cpu_s"] / tokens * 1e6 if tokens else None,
        "latency_ms": {
            "p50": pct(latencies, 0.5),
            "p90": pct(latencies, 0.9),
            "p99": pct(latencies, 0.99),
        },
        "oldest_ms": {"p50": pct(oldest, 0.5), "p90": pct(oldest, 0.9), "p99": pct(oldest, 0.99)},
        "latencies_ms": latencies if data["scenario"] == "latency" else None,
        "first_chunk_ms": {"p50": pct(firsts, 0.5), "p99": pct(firsts, 0.99)},
        "peak_rss_mib": data["peak_rss_kib"] / 1024,
        "rss_per_stream_kib": (data["peak_rss_kib"] - data["baseline_rss_kib"])
        / max(1, len(every)),
    }
    server = data.get("server")
    stream = every[0]
    if data["scenario"] == "block" and server and stream.get("verdict_ns"):
        # From the verdict, stamped where the rail returned it: what the server wrote after
        # it, and how long until it saw the client hang up (None: it never did).
        verdict = stream["verdict_ns"]
        gone = server["disconnected_ns"]
        row["tokens_after_verdict"] = sum(1 for t in server["sent_ns"] if t > verdict)
        row["verdict_to_disconnect_ms"] = (gone - verdict) / 1e6 if gone else None
        row["verdict_to_consumer_ms"] = (
            (stream["blocked_ns"] - verdict) / 1e6 if stream["blocked_ns"] else None
        )
        row["server_stopped"] = gone is not None
    if data["scenario"] == "close" and server and stream["closed_ns"]:
        gone = server["disconnected_ns"]
        row["close_to_disconnect_ms"] = (gone - stream["closed_ns"]) / 1e6 if gone else None
        row["tokens_after_close"] = sum(1 for t in server["sent_ns"] if t > stream["closed_ns"])
    return row


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if value == float("inf"):
        return "never"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def report(
    results: list[dict[str, Any]], nemo: bool, quick: bool, gc_gen0: int | None = None
) -> str:
    by = {(r["scenario"], r["system"]): r for r in results}
    lines = [f"# railstream benchmarks{' (quick)' if quick else ''}", ""]
    if gc_gen0:
        lines += [
            f"Every client with young garbage collections every {gc_gen0:,} allocations "
            "(`--gc-gen0`; CPython's default is 700).",
            "",
        ]
    if not nemo:
        lines += ["NeMo Guardrails: skipped (run `python -m benchmarks --setup-nemo` first).", ""]
    sections = [
        (
            "throughput",
            "One unpaced stream (median of rounds)",
            ["tokens_per_s", "cpu_us_per_token", "cpu_x_floor", "failed"],
        ),
        (
            "latency",
            "Latency per chunk at 1 ms/token (ms, server send -> consumer, from the chunk's "
            "newest token and from its oldest; median of rounds)",
            [
                "latency_ms.p50",
                "latency_ms.p90",
                "latency_ms.p99",
                "oldest_ms.p50",
                "oldest_ms.p99",
                "first_chunk_ms.p50",
                "p50_minus_floor_ms",
            ],
        ),
        (
            "block",
            "A forbidden word half-way, 1 ms/token (after the verdict: as the rail returned it)",
            [
                "tokens",
                "tokens_after_verdict",
                "verdict_to_disconnect_ms",
                "verdict_to_consumer_ms",
                "server_stopped",
            ],
        ),
        (
            "close",
            "The consumer closes after 100 tokens",
            ["close_to_disconnect_ms", "tokens_after_close"],
        ),
        ("slow rail", "A 300 ms rail, windows 200/50, stream_first false", ["wall_s"]),
    ]
    concurrency = sorted(
        {r["scenario"] for r in results if r["scenario"].startswith("concurrency")},
        key=lambda s: int(s.split()[1]),
    )
    for scenario in concurrency:
        sections.insert(
            -2,
            (
                scenario,
                f"{scenario.split()[1]} concurrent streams of 200 tokens (failed requests "
                "not counted in tokens/s)",
                [
                    "tokens_per_s",
                    "cpu_us_per_token",
                    "first_chunk_ms.p50",
                    "first_chunk_ms.p99",
                    "peak_rss_mib",
                    "rss_per_stream_kib",
                    "failed",
                ],
            ),
        )
    for scenario, title, keys in sections:
        rows = [r for r in results if r["scenario"] == scenario]
        if not rows:
            continue
        lines += [
            f"## {title}",
            "",
            "| system | " + " | ".join(keys) + " |",
            "|" + "---|" * (len(keys) + 1),
        ]
        for r in rows:
            values = []
            for key in keys:
                value: Any = r
                for part in key.split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                values.append(fmt(value))
            lines.append(f"| {r['system']} | " + " | ".join(values) + " |")
        lines.append("")

    # The targets name 500 streams (and 100 for memory); --quick stops at 300.
    load = "concurrency 500" if "concurrency 500" in concurrency else (concurrency or [""])[-1]
    small = "concurrency 100"
    rs, nemo = "railstream 200/50 first", "nemo 200/50 first"

    def get(scenario: str, system: str, key: str) -> Any:
        value: Any = by.get((scenario, system), {})
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def worst(scenario: str, key: str, systems: str) -> Any:
        """The largest value over the configurations of one system (None counts as worst)."""
        rows = [r for r in results if r["scenario"] == scenario and r["system"].startswith(systems)]
        found = [r.get(key) for r in rows]
        if not found:
            return None
        return float("inf") if None in found else max(found)  # None: it never happened

    lines += [
        "## Targets (same run)",
        "",
        "x floor: railstream's figure over the floor's (a plain httpx loop on the same server).",
        "",
        "| figure (rail on, windows 200/50) | floor | railstream | NeMo | target | met |",
        "|---|---|---|---|---|---|",
    ]

    def against_floor(
        title: str, scenario: str, key: str, unit: str, target: float, higher: bool = False
    ) -> None:
        f, r, n = get(scenario, "floor", key), get(scenario, rs, key), get(scenario, nemo, key)
        x = _ratio(r, f)
        rounds = by.get((scenario, rs), {}).get("rounds", 1)
        how = ""
        if rounds > 1:
            # Figures are medians of the rounds; the ratio is the median of each round's own.
            x = (get(scenario, rs, "x_floor") or {}).get(key, x)
            how = f", median of {rounds} rounds' ratios"
        met = "n/a" if x is None else ("yes" if (x >= target if higher else x <= target) else "no")
        bound = ">=" if higher else "<="
        u = f" {unit}" if unit else ""
        lines.append(
            f"| {title} | {fmt(f)}{u} | {fmt(r)}{u} ({fmt(x)}x{how}) | {fmt(n)}{u} "
            f"| {bound} {target}x floor | {met} |"
        )

    def absolute(title: str, scenario: str, key: str, unit: str, target: float) -> None:
        r = worst(scenario, key, "railstream")
        n = worst(scenario, key, "nemo")
        met = "n/a" if r is None else ("yes" if r <= target else "no")

        def shown(value: Any) -> str:
            return fmt(value) if value == float("inf") else f"{fmt(value)} {unit}".rstrip()

        lines.append(
            f"| {title} | | {shown(r)} | {shown(n)} | <= {fmt(target, 0)} {unit} | {met} |".replace(
                "  |", " |"
            )
        )

    cpu_x = get("throughput", rs, "cpu_x_floor")
    f_cpu = get("throughput", "floor", "cpu_us_per_token")
    met = "n/a" if cpu_x is None else ("yes" if cpu_x <= 1.3 else "no")
    lines.append(
        f"| one unpaced stream, stream_first true: CPU per token | {fmt(f_cpu)} µs "
        f"| {fmt(get('throughput', rs, 'cpu_us_per_token'))} µs ({fmt(cpu_x)}x, median of "
        f"the rounds' ratios) | {fmt(get('throughput', nemo, 'cpu_us_per_token'))} µs "
        f"| <= 1.3x floor | {met} |"
    )
    n_load = load.split()[-1] if load else "?"
    against_floor(
        f"{n_load} concurrent 200-token streams: tokens/s", load, "tokens_per_s", "", 0.8, True
    )
    against_floor("same: time to first chunk p50", load, "first_chunk_ms.p50", "ms", 1.5)
    against_floor("same: CPU per token", load, "cpu_us_per_token", "µs", 1.3)
    against_floor("100 concurrent: RSS per stream", small, "rss_per_stream_kib", "KiB", 1.2)
    absolute(
        "tokens written after the block verdict (worst)", "block", "tokens_after_verdict", "", 10
    )
    absolute(
        "block verdict to the server seeing the disconnect (worst)",
        "block",
        "verdict_to_disconnect_ms",
        "ms",
        5,
    )
    absolute(
        "consumer's close to the server's disconnect (worst)",
        "close",
        "close_to_disconnect_ms",
        "ms",
        5,
    )
    m50, m32 = _minus(by, rs), _minus(by, "railstream 32/8 first")
    for title, value, other in (
        ("latency p50 at 1 ms/token minus the floor's", m50, _minus(by, nemo)),
        ("same, windows 32/8", m32, _minus(by, "nemo 32/8 first")),
    ):
        met = "n/a" if value is None else ("yes" if value <= 0.1 else "no")
        lines.append(f"| {title} | | {fmt(value)} ms | {fmt(other)} ms | <= 0.1 ms | {met} |")
    failures = sum(r.get("failed", 0) for r in results)
    lines += ["", f"Failed requests in the whole run: {failures}.", ""]
    return "\n".join(lines)


def _cpu_ratio(by: dict[tuple[str, str], dict[str, Any]], system: str) -> str:
    row = by.get(("throughput", system))
    value = row.get("cpu_x_floor") if row else None
    return fmt(value) + "x" if value else "n/a"


def _minus(by: dict[tuple[str, str], dict[str, Any]], system: str) -> float | None:
    row = by.get(("latency", system))
    return row.get("p50_minus_floor_ms") if row else None


def plots(results: list[dict[str, Any]], out: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ["plots: skipped (pip install matplotlib)"]
    made = []
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        if r["scenario"] == "latency" and r["latencies_ms"]:
            values = sorted(r["latencies_ms"])
            ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=r["system"])
    ax.set_xscale("log")
    ax.set_xlabel("latency per chunk (ms, log)")
    ax.set_ylabel("fraction of chunks")
    ax.legend(fontsize=7)
    ax.set_title("Latency per chunk at 1 ms/token")
    fig.tight_layout()
    fig.savefig(out / "latency_cdf.png", dpi=120)
    made.append("latency_cdf.png")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    systems = sorted({r["system"] for r in results if r["scenario"].startswith("concurrency")})
    for system in systems:
        rows = sorted(
            (int(r["scenario"].split()[1]), r)
            for r in results
            if r["scenario"].startswith("concurrency") and r["system"] == system
        )
        left.plot(
            [n for n, _ in rows], [r["tokens_per_s"] for _, r in rows], marker="o", label=system
        )
        right.plot(
            [n for n, _ in rows],
            [r["first_chunk_ms"]["p50"] for _, r in rows],
            marker="o",
            label=system,
        )
    left.set_xlabel("concurrent streams")
    left.set_ylabel("tokens/s")
    right.set_xlabel("concurrent streams")
    right.set_ylabel("time to first chunk p50 (ms)")
    left.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "concurrency.png", dpi=120)
    made.append("concurrency.png")
    return made


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (under 3 minutes)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--gc-gen0",
        type=int,
        default=None,
        help="every client (floor, railstream, NeMo alike) collects young objects every N "
        "allocations instead of CPython's 700, as railstream server does",
    )
    parser.add_argument(
        "--setup-nemo",
        action="store_true",
        help="install NeMo Guardrails 0.24.1 in .bench/nemo-venv",
    )
    args = parser.parse_args()
    if args.setup_nemo:
        setup_nemo()
        return
    args.out.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.quick, args.out, args.gc_gen0)
    started = time.perf_counter()
    try:
        if bench.nemo is None:
            print(
                "NeMo Guardrails: skipped (run `python -m benchmarks --setup-nemo` first)",
                file=sys.stderr,
            )
        bench.measure()
    finally:
        bench.close()
    (args.out / "results.json").write_text(
        json.dumps(
            {"quick": args.quick, "gc_gen0": args.gc_gen0, "results": bench.results}, indent=1
        )
    )
    text = report(bench.results, bench.nemo is not None, args.quick, args.gc_gen0)
    made = plots(bench.results, args.out)
    text += "\n" + "\n".join(f"![{m}]({m})" if m.endswith(".png") else m for m in made) + "\n"
    (args.out / "report.md").write_text(text)
    print(text)
    print(f"({time.perf_counter() - started:.0f} s; written to {args.out})", file=sys.stderr)


if __name__ == "__main__":
    main()
