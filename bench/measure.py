"""Small measuring tools the benchmarks share: percentiles, peak RSS, py-spy profiles."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from services.config import REPO_ROOT

PROFILES_DIR = REPO_ROOT / "bench" / "results" / "profiles"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def peak_rss_mib(pid: int | None = None) -> float:
    """Peak resident memory (VmHWM) of ``pid`` (a live process), or of this process."""
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc (children of every thread)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                todo.extend(int(child) for child in task.read_text().split())
            except OSError:
                continue
    return found


def watch_peak_rss(pid: int, interval_s: float = 0.5) -> dict[int, float]:
    """Poll the peak RSS (VmHWM) of ``pid`` and its descendants until ``pid`` exits; pid → MiB.
    Run it in a thread beside the process."""
    peaks: dict[int, float] = {}
    while Path(f"/proc/{pid}").exists():
        for each in tree_pids(pid):
            try:
                peaks[each] = max(peaks.get(each, 0.0), peak_rss_mib(each))
            except (OSError, ValueError):
                continue
        time.sleep(interval_s)
    return peaks


def py_spy() -> str | None:
    found = shutil.which("py-spy", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    return found


def profile_pid(pid: int, name: str, seconds: float) -> Path | None:
    """Sample a running process with py-spy for ``seconds``; write a flat top-functions text file.

    Returns the file, or None when py-spy is not installed (``pip install '.[bench]'`` brings it).
    """
    spy = py_spy()
    if spy is None:
        return None
    PROFILES_DIR.mkdir(parents=True, exist_ok=True)
    raw = PROFILES_DIR / f"{name}.speedscope.json"
    subprocess.run([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "97",
                    "--format", "speedscope", "--output", str(raw), "--nonblocking"],
                   capture_output=True, timeout=seconds + 60)
    if not raw.exists():
        return None
    top_functions(raw)  # the readable summary beside it
    return raw


def profile_self(name: str):
    """A pyinstrument profiler for code run in this process; ``stop_and_save()`` writes the text."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.002)

    class _Session:
        def __enter__(self):
            profiler.start()
            return self

        def __exit__(self, *exc: object) -> None:
            profiler.stop()
            PROFILES_DIR.mkdir(parents=True, exist_ok=True)
            (PROFILES_DIR / f"{name}.txt").write_text(profiler.output_text(unicode=True, show_all=False), "utf-8")

    return _Session()


def top_functions(speedscope: Path, n: int = 15) -> dict[str, object]:
    """Self and inclusive time of the hottest functions in a py-spy speedscope file (all threads),
    as shares of the samples; also written beside it as ``.txt``."""
    data = json.loads(speedscope.read_text())
    frames = data["shared"]["frames"]
    self_count: Counter[int] = Counter()
    total_count: Counter[int] = Counter()
    samples = 0
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            samples += weight
            if stack:
                self_count[stack[-1]] += weight
            for frame in set(stack):
                total_count[frame] += weight

    def name(i: int) -> str:
        f = frames[i]
        file = str(f.get("file", "")).replace(str(REPO_ROOT) + "/", "")
        file = file.split("site-packages/")[-1]
        return f"{f['name']} ({file}:{f.get('line', '')})"

    top_self = [(name(i), round(100 * c / max(1, samples), 1)) for i, c in self_count.most_common(n)]
    top_total = [(name(i), round(100 * c / max(1, samples), 1)) for i, c in total_count.most_common(3 * n)]
    text = [f"{speedscope.name}: {samples:.1f} s sampled over all threads (shares of that)", "", "self %:"]
    text += [f"  {share:5.1f}  {fn}" for fn, share in top_self]
    text += ["", "inclusive %:"] + [f"  {share:5.1f}  {fn}" for fn, share in top_total]
    speedscope.with_suffix("").with_suffix(".txt").write_text("\n".join(text) + "\n", "utf-8")
    return {"sampled_s": round(samples, 1), "self": top_self, "inclusive": top_total[:n],
            "file": str(speedscope.with_suffix("").with_suffix(".txt").relative_to(REPO_ROOT))}
