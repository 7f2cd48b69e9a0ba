"""A real Caddy in front of test servers, run from the repo's own ``deploy/caddy/Caddyfile``.

What compose gets from the Caddyfile's defaults, the tests set by its environment placeholders:
``SITE_ADDRESS=localhost`` (a certificate from Caddy's local CA, which the clients here trust),
free HTTP/HTTPS ports, fixed upstreams (``to 127.0.0.1:P …``), the admin endpoint off, and
Caddy's data and config (its CA, certificates) in a temporary directory, so nothing leaks into
``~/.local/share/caddy`` and every run has its own CA.

Usage::

    with Caddy(intake=["127.0.0.1:8000"], query=["127.0.0.1:8001"]) as caddy:
        caddy.client().get("/formList")          # https://localhost:PORT, verified against Caddy's root
        caddy.http_url                           # the plain-HTTP port (redirects)

Needs the ``caddy`` binary (Debian's package, 2.6; `.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from tests.kafka.broker import die_with_parent, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
CADDYFILE = REPO_ROOT / "deploy" / "caddy" / "Caddyfile"
SITE = "localhost"


class CaddyError(RuntimeError):
    """Caddy could not be started."""


def caddy_binary() -> str:
    found = shutil.which("caddy")
    if found is None:
        raise CaddyError("no `caddy` on PATH: apt-get install caddy (.ci/run does)")
    return found


def upstreams_line(addresses: Sequence[str]) -> str:
    """The reverse_proxy line the Caddyfile's ``*_UPSTREAMS`` placeholder takes, for fixed addresses."""
    if not addresses:
        raise ValueError("at least one upstream")
    return "to " + " ".join(addresses)


class Caddy:
    """``caddy run`` with the repo's Caddyfile, on free ports, until ``stop()``.

    ``intake`` and ``query`` are the upstream addresses (``host:port``); ``env`` sets (or
    overrides) more of the Caddyfile's placeholders, e.g. ``MAX_REQUEST_BODY``.
    """

    def __init__(self, intake: Sequence[str], query: Sequence[str], env: Mapping[str, str] | None = None,
                 startup_timeout: float = 60.0) -> None:
        self.intake, self.query = list(intake), list(query)
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.workdir: Path | None = None
        self.http_port = self.https_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    # -- what tests use ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"https://{SITE}:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://{SITE}:{self.http_port}"

    @property
    def root_cert(self) -> Path:
        """Caddy's local CA root, which signed the site's certificate."""
        assert self.workdir is not None
        return self.workdir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts Caddy's local root only (not the system's CAs)."""
        return ssl.create_default_context(cafile=str(self.root_cert))

    def client(self, **kwargs: object) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.base_url, verify=self.ssl_context(), **kwargs)  # type: ignore[arg-type]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        path = self.workdir / "caddy.log" if self.workdir else None
        return path.read_text(errors="replace") if path and path.exists() else "(no caddy log)"

    # -- life ----------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        assert self.workdir is not None
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "XDG_DATA_HOME": str(self.workdir / "data"),
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
            "SITE_ADDRESS": SITE,
            "HTTP_PORT": str(self.http_port),
            "HTTPS_PORT": str(self.https_port),
            "CADDY_ADMIN": "off",
            "INTAKE_UPSTREAMS": upstreams_line(self.intake),
            "QUERY_UPSTREAMS": upstreams_line(self.query),
            **self.extra_env,
        }

    def start(self) -> Caddy:
        if self._proc is not None:
            raise CaddyError("already started")
        self.workdir = Path(tempfile.mkdtemp(prefix="caddy-test-"))
        for attempt in range(3):  # a free port can be taken between probing and binding
            self.http_port, self.https_port = free_port(), free_port()
            try:
                self._start_once()
                return self
            except CaddyError as error:
                self._kill()
                if "address already in use" not in str(error) or attempt == 2:
                    self.stop()
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> None:
        assert self.workdir is not None
        with open(self.workdir / "caddy.log", "wb") as log:
            self._proc = subprocess.Popen(
                [caddy_binary(), "run", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                env=self.environment(), cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + self.startup_timeout
        while True:  # serving: TLS with the local CA's certificate, and Caddy's own answer for /metrics
            if self._proc.poll() is not None:
                raise CaddyError(f"caddy exited with {self._proc.returncode}:\n{self.log()[-3000:]}")
            if self.root_cert.exists():
                try:
                    if httpx.get(f"{self.base_url}/metrics", verify=self.ssl_context(), timeout=2).status_code == 404:
                        return
                except (httpx.HTTPError, ssl.SSLError):
                    pass
            if time.monotonic() > deadline:
                raise CaddyError(f"caddy did not serve {self.base_url} within {self.startup_timeout:.0f}s:\n"
                                 f"{self.log()[-3000:]}")
            time.sleep(0.1)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # graceful: lets requests in flight finish
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def stop(self) -> None:
        self._kill()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> Caddy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
