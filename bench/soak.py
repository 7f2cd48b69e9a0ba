"""The long runs of the fault suite: coverage-guided fuzzing of the intake's parser and
validation (``bench/fuzz_intake.py``, atheris) for minutes instead of the seconds
``tests/test_fuzz_intake.py`` gets in ``make test``. The figure is inputs tried and crashes
found (goal: none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from bench.context import Context
from bench.results import Figure
from services.config import REPO_ROOT


def run(ctx: Context) -> list[Figure]:
    seconds = int(os.environ.get("BENCH_FUZZ_SECONDS", 600 if ctx.full else 30))
    done = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "fuzz_intake.py"), "--seconds", str(seconds)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=seconds + 600)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"fuzz_intake.py printed no summary (exit {done.returncode}):\n{done.stderr[-3000:]}")
    summary = json.loads(lines[-1])
    crashes = int(summary.get("crashes", 0))
    engine = summary.get("engine", "atheris")
    return [
        Figure("soak.fuzz_inputs", f"soak: fuzzed submissions tried ({engine}, {seconds} s)", summary["runs"],
               "inputs", details=summary),
        Figure("soak.fuzz_crashes", "soak: crashes found by fuzzing the parser and validation", crashes, "crashes",
               goal="none", met=crashes == 0,
               notes="" if crashes == 0 else "inputs that crashed are in build/fuzz/"),
    ]
