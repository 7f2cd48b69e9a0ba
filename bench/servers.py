"""Service processes the benchmarks start the way ``make intake`` / ``make worker`` / ``make query``
(and docker-compose) do: ``python -m MODULE`` with the settings as environment variables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import measure
from bench.measure import top_functions
from services.config import REPO_ROOT, Settings
from tests.kafka.broker import die_with_parent


def env_of(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, **settings.to_env(), "LOG_FORMAT": "text", **extra}


@dataclass
class Service:
    """One ``python -m module`` child: started, waited for, measured, stopped (always, in ``finally``)."""

    module: str
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, timeout_s: float = 120) -> Service:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", self.module], cwd=REPO_ROOT, env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        if self.health_url:
            deadline = time.monotonic() + timeout_s
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.module} exited {self.process.returncode}:\n{self.log_tail()}")
                try:
                    if httpx.get(self.health_url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.module} not healthy after {timeout_s}s:\n{self.log_tail()}")
                time.sleep(0.2)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_s(self) -> float:
        """CPU time (user + system, all threads) the process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mib(self) -> float:
        return measure.peak_rss_mib(self.pid) if self.alive() else 0.0

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def run_json(args: list[str], log_path: Path, timeout_s: float = 3600) -> dict:
    """Run ``python -m ...`` to completion; its stdout is one JSON object."""
    with log_path.open("ab") as log:
        done = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log,
                              timeout=timeout_s, preexec_fn=die_with_parent)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} exited {done.returncode}:\n{log_path.read_text()[-3000:]}")
    return json.loads(done.stdout)


class Profiler:
    """py-spy on a process, in a thread, while the caller drives load; ``top()`` afterwards.

    Starts sampling once ``ready`` exists (when given): a load process makes it after building
    its requests. By default only the thread holding the GIL is sampled (py-spy ``--gil``): in a
    threaded server py-spy's idle heuristic counts threads blocked in fsync or on a lock as busy,
    and this is where the CPU goes. ``mode="wall"`` samples every thread, waiting or not
    (``--idle``): where a request's time goes. ``mode="cpu"`` is ``measure.profile_pid``."""

    def __init__(self, pid: int, name: str, seconds: float, ready: Path | None = None, mode: str = "gil"):
        self.path: Path | None = None
        self._args = (pid, name, seconds, ready, mode)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pid, name, seconds, ready, mode = self._args
        deadline = time.monotonic() + 600
        while ready is not None and not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if mode == "cpu":
            self.path = measure.profile_pid(pid, name, seconds)
            return
        spy = measure.py_spy()
        if spy is None:
            return
        measure.PROFILES_DIR.mkdir(parents=True, exist_ok=True)
        raw = measure.PROFILES_DIR / f"{name}.speedscope.json"
        subprocess.run([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "97",
                        "--format", "speedscope", "--output", str(raw), "--nonblocking",
                        "--idle" if mode == "wall" else "--gil"],
                       capture_output=True, timeout=seconds + 60)
        self.path = raw if raw.exists() else None

    def top(self, n: int = 15) -> dict[str, object]:
        self._thread.join()
        if self.path is None:
            return {"profile": "py-spy not available"}
        return top_functions(self.path, n)
