"""``python -m bench``: run the benchmarks, write ``bench/results/`` and the README's table.

Each benchmark is a module of this package with ``run(ctx) -> list[Figure]``; one that fails is
reported in the results and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import machine
from bench.context import SCALES, Context
from bench.results import Run, write

# In the order they run: the cheap ones first, the whole-log replay last.
BENCHMARKS = ("query", "lineage", "embedded", "hostile", "intake", "worker", "replay", "soak")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="full",
                        help="quick: a few minutes, checks the harness; full: the figures the README shows")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--no-readme", action="store_true", help="do not update README.md's table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    chosen = [b.strip() for b in args.only.split(",") if b.strip()] or list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")

    run = Run(scale=args.scale, machine=machine.describe())
    with tempfile.TemporaryDirectory(prefix="thuvien-bench-", dir=args.workdir) as tmp:
        ctx = Context(scale=args.scale, workdir=Path(tmp))
        try:
            for name in chosen:
                t0 = time.monotonic()
                print(f"== {name}", flush=True)
                try:
                    figures = importlib.import_module(f"bench.{name}").run(ctx)
                except Exception as exc:  # one benchmark's failure must not lose the others' figures
                    traceback.print_exc()
                    run.errors[name] = f"{type(exc).__name__}: {exc}"
                    continue
                for figure in figures:
                    print(f"   {figure.label}: {figure.value:,.2f} {figure.unit}"
                          + (f" (bound {figure.bound:,.2f})" if figure.bound is not None else "")
                          + ("" if figure.met is None else " — goal met" if figure.met else " — goal MISSED"),
                          flush=True)
                run.figures.extend(figures)
                print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
        finally:
            ctx.close()
    path = write(run, update_readme=not args.no_readme and not args.only)
    print(f"results: {path}")
    return 1 if run.errors else 0


if __name__ == "__main__":
    sys.exit(main())
