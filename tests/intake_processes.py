"""Intake replicas for tests: ``python -m services.intake`` processes as compose runs them (BUS=kafka),
each on its own port and STATE_DIR, started together and watched through /health and /metrics.

Usage::

    replicas = start_intakes(["a", "b"], tmp_path, forms_dir=…, bootstrap=…, prefix=…,
                             env={"LEDGER_DSN": dsn, "ACCOUNTS_FILE": …, "DIGEST_NONCE_SECRET": …})
    try:
        replicas[0].address                     # 127.0.0.1:PORT, plain HTTP
    finally:
        for replica in replicas:
            replica.stop()
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.config import REPO_ROOT
from tests.kafka.broker import die_with_parent, free_port


@dataclass
class IntakeProcess:
    """``python -m services.intake`` as compose runs a replica (BUS=kafka), on its own port and state dir."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"intake died:\n{self.log_tail()}"
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"intake not ready:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def accepted(self) -> float:
        """Submissions this replica accepted, from its own /metrics."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("intake_submissions_accepted_total{"))

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to Caddy, the broker or PostgreSQL."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_intakes(names: Sequence[str], tmp_path: Path, *, forms_dir: Path, bootstrap: str, prefix: str,
                  env: Mapping[str, str] | None = None) -> list[IntakeProcess]:
    """One replica per name, started at once (each under ``tmp_path/NAME``), believing forwarded headers
    from 127.0.0.1 (where Caddy connects from); ready when this returns. ``env`` adds to or overrides
    the environment every replica gets (LEDGER_DSN, ACCOUNTS_FILE, …)."""
    started: list[IntakeProcess] = []
    try:
        for name in names:
            port = free_port()
            replica_env = {**os.environ, "BUS": "kafka", "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                           "KAFKA_TOPIC_PREFIX": prefix, "HOST": "127.0.0.1", "PORT": str(port),
                           "STATE_DIR": str(tmp_path / name / "state"), "FORMS_DIR": str(forms_dir),
                           "TRUSTED_PROXIES": "127.0.0.1", "LOG_LEVEL": "WARNING", **(env or {})}
            log_path = tmp_path / f"intake-{name}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen([sys.executable, "-m", "services.intake"], cwd=REPO_ROOT,
                                           env=replica_env, stdout=log, stderr=subprocess.STDOUT,
                                           preexec_fn=die_with_parent if sys.platform == "linux" else None)
            started.append(IntakeProcess(process, port, log_path))
        for intake in started:
            intake.wait_ready()
    except BaseException:
        for intake in started:
            intake.stop()
        raise
    return started
