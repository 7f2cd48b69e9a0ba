"""A throw-away PostgreSQL cluster for tests, from Debian's packages (``postgresql``).

``initdb`` makes a cluster in a temporary directory; ``postgres`` serves it on a free TCP port
of 127.0.0.1 (its socket in the same directory, not /var/run), with fsync on, as configured by
default: the tests measure real commits. The binaries are found through ``pg_config --bindir``,
else ``/usr/lib/postgresql/*/bin``, else ``$PATH``.

As root (CI, these machines), initdb refuses to run: the cluster then belongs to the
``postgres`` user that Debian's package creates (else ``nobody``), and both commands are started
as that user by ``subprocess``'s own ``user=``/``group=`` (no su, runuser or sudo in between,
so the process we hold is the postmaster itself and stopping it is one signal).

Usage::

    with PostgresCluster() as cluster:     # always starts one
        use(cluster.dsn("postgres"))

    with postgres_server() as admin_dsn:   # honours $LEDGER_DSN (a server already running)
        use(admin_dsn)

``create_database(admin_dsn)`` gives each test a database of its own. Developers:
``python -m tests.postgres`` starts a cluster and prints its DSN until Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

ENV_DSN = "LEDGER_DSN"
_SERVICE_USERS = ("postgres", "nobody")  # who runs the cluster when we are root


class PostgresError(RuntimeError):
    """The cluster could not be made or started."""


def bindir() -> Path:
    """Where initdb and postgres are."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                    check=True).stdout.strip())
        if (found / "initdb").is_file():
            return found
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):  # the newest first
        if (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb is None:
        raise PostgresError("no initdb found: apt-get install postgresql (or set LEDGER_DSN to a running server)")
    return Path(initdb).resolve().parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    """The user to run the cluster as; None when we are not root (then ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in _SERVICE_USERS:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresError(f"running as root and none of the users {_SERVICE_USERS} exists to run PostgreSQL")


class PostgresCluster:
    def __init__(self, port: int | None = None):
        self.port = port or _free_port()
        self._bin = bindir()
        self._user = _run_as()
        self._root = Path(tempfile.mkdtemp(prefix="thuvien-pg-"))
        self._data = self._root / "data"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self._root / "postgres.log"
        if self._user is not None:
            os.chown(self._root, self._user.pw_uid, self._user.pw_gid)
        self._initdb()
        atexit.register(self.destroy)

    def _as_user(self) -> dict[str, object]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        done = subprocess.run(
            [str(self._bin / "initdb"), "-D", str(self._data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--locale=C"],
            capture_output=True, text=True, cwd=self._root, check=False, **self._as_user())  # type: ignore[call-overload]
        if done.returncode != 0:
            raise PostgresError(f"initdb failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30.0) -> PostgresCluster:
        if self.running:
            return self
        log = self._log.open("ab")
        self._process = subprocess.Popen(
            [str(self._bin / "postgres"), "-D", str(self._data), "-p", str(self.port), "-k", str(self._root),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self._root, start_new_session=True,
            **self._as_user())  # type: ignore[call-overload]
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PostgresError(f"postgres exited ({self._process.returncode}):\n{self.log_tail()}")
            try:
                psycopg.connect(self.dsn(), connect_timeout=1).close()
                return self
            except psycopg.OperationalError:
                time.sleep(0.1)
        self.stop()
        raise PostgresError(f"postgres did not accept connections within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: open sessions are ended, the cluster checkpoints); SIGQUIT if stuck."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)
            process.wait(10)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self._log.read_text("utf-8", "replace").splitlines()[-lines:])
        return ""

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """An administrator's DSN: $LEDGER_DSN if set (its user must be allowed to create databases),
    else that of a cluster started now and destroyed at the end."""
    if os.environ.get(ENV_DSN):
        yield os.environ[ENV_DSN]
        return
    with PostgresCluster() as cluster:
        yield cluster.dsn()


def create_database(admin_dsn: str) -> str:
    """A new, empty database on the server; its DSN."""
    name = f"test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(admin_dsn, name)


def drop_database(admin_dsn: str, dsn: str) -> None:
    name = conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))


def database_url(admin_dsn: str, dbname: str) -> str:
    """``admin_dsn`` pointed at ``dbname``, as a postgresql:// URL (what LEDGER_DSN takes)."""
    params = conninfo_to_dict(admin_dsn)
    user = params.get("user", "")
    password = f":{params['password']}" if params.get("password") else ""
    host, port = params.get("host", "127.0.0.1"), params.get("port", "5432")
    if host.startswith("/"):  # a socket directory
        return f"postgresql://{user}{password}@:{port}/{dbname}?host={host}"
    return f"postgresql://{user}{password}@{host}:{port}/{dbname}"


if __name__ == "__main__":  # pragma: no cover - a developer's convenience
    with PostgresCluster() as running:
        print(running.dsn(), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
