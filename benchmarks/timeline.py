"""Latency over time: per-window percentiles of one vegeta attack, and the plot of them.

A run's overall p99 hides *when* the slow requests happened; a tail that grows with the run's
age is a different bug from one spike. This reads every result (timestamp, latency, status) of
an attack and cuts it into fixed windows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import subprocess
from collections.abc import Iterator, Sequence

from benchmarks import vegeta


@dataclasses.dataclass(frozen=True)
class Window:
    start: float        # seconds since the attack's first request
    requests: int
    errors: int
    p50: float          # milliseconds
    p99: float
    max: float


def results(path: pathlib.Path) -> Iterator[tuple[float, float, int]]:
    """(unix seconds, latency ms, status code) of every request of an attack."""
    encoded = subprocess.Popen([str(vegeta.ensure_vegeta()), "encode", "-to=json", str(path)],
                               stdout=subprocess.PIPE)
    assert encoded.stdout is not None
    for line in encoded.stdout:
        result = json.loads(line)
        yield _unix_seconds(result["timestamp"]), result["latency"] / 1e6, int(result["code"])
    encoded.wait()


def _unix_seconds(timestamp: str) -> float:
    import datetime

    # RFC 3339 with nanoseconds: Python's parser takes at most microseconds.
    head, _, rest = timestamp.partition(".")
    digits = "".join(ch for ch in rest if ch.isdigit())
    zone = rest[len(digits):] or "Z"
    moment = datetime.datetime.fromisoformat(f"{head}.{digits[:6].ljust(6, '0')}{zone.replace('Z', '+00:00')}")
    return moment.timestamp()


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (nan when empty)."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(share * len(values)) - 1))]


def windows(path: pathlib.Path, *, seconds: float = 60) -> list[Window]:
    buckets: dict[int, list[float]] = {}
    errors: dict[int, int] = {}
    first: float | None = None
    for at, latency, code in results(path):
        first = at if first is None else min(first, at)
        index = int(at // seconds)
        buckets.setdefault(index, []).append(latency)
        if not 200 <= code < 300:
            errors[index] = errors.get(index, 0) + 1
    if first is None:
        return []
    origin = int(first // seconds)
    out = []
    for index in sorted(buckets):
        latencies = sorted(buckets[index])
        out.append(Window(start=(index - origin) * seconds, requests=len(latencies), errors=errors.get(index, 0),
                          p50=percentile(latencies, 0.50), p99=percentile(latencies, 0.99), max=latencies[-1]))
    # The first and last windows are partial (the attack did not start on a window boundary).
    return [w for w in out if w.requests >= 0.5 * max(x.requests for x in out)]


def write_csv(rows: Sequence[Window], path: pathlib.Path) -> None:
    lines = ["minute,requests,errors,p50_ms,p99_ms,max_ms"]
    lines += [f"{w.start / 60:g},{w.requests},{w.errors},{w.p50:.3f},{w.p99:.3f},{w.max:.3f}" for w in rows]
    path.write_text("\n".join(lines) + "\n")


def plot(series: dict[str, Sequence[Window]], path: pathlib.Path, *, title: str, limit_ms: float | None = None,
         rss: Sequence[tuple[float, float]] = ()) -> None:
    """Per-window p99 (and p50) of each series, with the target as a line; RSS on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 5), dpi=110)
    for label, rows in series.items():
        minutes = [w.start / 60 for w in rows]
        axis.plot(minutes, [w.p99 for w in rows], marker="o", markersize=3, label=f"{label} p99")
        axis.plot(minutes, [w.p50 for w in rows], linestyle="--", linewidth=1, label=f"{label} p50")
    if limit_ms is not None:
        axis.axhline(limit_ms, color="red", linewidth=1, linestyle=":", label=f"target p99 {limit_ms:g} ms")
    axis.set_xlabel("minute of the run")
    axis.set_ylabel("latency per 1-minute window (ms)")
    axis.set_ylim(bottom=0)
    axis.grid(True, alpha=0.3)
    if rss:
        memory = axis.twinx()
        memory.plot([m for m, _ in rss], [mib for _, mib in rss], color="grey", linewidth=1, label="gate RSS (MiB)")
        memory.set_ylabel("gate RSS (MiB)")
        memory.set_ylim(bottom=0)
        memory.legend(loc="upper right")
    axis.legend(loc="upper left")
    axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
