"""``python -m benchmarks [load|history|apiserver|memory|decide|sustained|throughput|retention-load|all]``: run parts,
print one results table."""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Callable

from benchmarks import load
from benchmarks.report import Row, table

Part = Callable[[argparse.Namespace], list[Row]]


def _parts() -> dict[str, Part]:
    from benchmarks import apiserver, decide, history, retention_load, sustained

    return {"decide": decide.run_decide, "load": load.run_load, "history": history.run_history, "apiserver": apiserver.run_apiserver,
            "memory": load.run_memory, "sustained": sustained.run_sustained,
            "throughput": sustained.run_throughput, "retention-load": retention_load.run_retention_load}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("parts", nargs="*", default=["all"],
                        choices=["load", "history", "apiserver", "memory", "decide", "sustained", "throughput",
                                 "retention-load", "all"],
                        help="which parts to run (default: all)")
    load.add_arguments(parser)
    from benchmarks import apiserver, decide, history, retention_load, sustained

    decide.add_arguments(parser)
    history.add_arguments(parser)
    retention_load.add_arguments(parser)
    sustained.add_arguments(parser)
    apiserver.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    parts = _parts()
    # Long, or a second pass over the history seed: only when asked for.
    everyday = [name for name in parts if name not in ("decide", "sustained", "throughput", "retention-load")]
    chosen = everyday if "all" in args.parts else list(dict.fromkeys(args.parts))
    rows: list[Row] = []
    started = time.monotonic()
    for name in chosen:
        print(f"== {name} ({datetime.datetime.now():%H:%M:%S})", flush=True)
        began = time.monotonic()
        part_rows = parts[name](args)
        took = time.monotonic() - began
        rows.extend(part_rows)
        rows.append(Row(name, "part took", took / 60, "min"))
        print(table(part_rows), flush=True)
    print(f"\nsafety-gate benchmarks — {datetime.date.today()} — {', '.join(chosen)} — "
          f"{(time.monotonic() - started) / 60:.1f} min\n")
    print(table(rows))


if __name__ == "__main__":
    main()
