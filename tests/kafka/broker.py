"""A real single-node Apache Kafka broker (KRaft mode) for tests.

The broker runs from the Maven Central jars that ``tests/kafka/pom.xml`` copies to
``build/kafka/lib`` (``ensure_jars()`` does that on a fresh clone), on the ``java``
found via ``$JAVA_HOME`` or ``$PATH``.

Usage::

    from tests.kafka.broker import KafkaBroker, kafka_bootstrap

    with KafkaBroker() as broker:          # always starts a broker
        use(broker.bootstrap_servers)      # "127.0.0.1:PORT"

    with kafka_bootstrap() as servers:     # honours $KAFKA_BOOTSTRAP_SERVERS
        use(servers)

Developers: ``python -m tests.kafka.broker [--port N]`` starts a broker and prints its
address until Ctrl-C.

Only the standard library is needed; ``confluent_kafka`` is used for the readiness check
when it is importable.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
POM_PATH = REPO_ROOT / "tests" / "kafka" / "pom.xml"
LIB_DIR = REPO_ROOT / "build" / "kafka" / "lib"
ENV_BOOTSTRAP = "KAFKA_BOOTSTRAP_SERVERS"

_LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.server.metrics=WARN
"""
# For the one-shot StorageTool: without it, it dumps the whole KafkaConfig at INFO.
_LOG4J_TOOLS_PROPERTIES = """\
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


class KafkaBrokerError(RuntimeError):
    """The broker could not be set up, formatted or started."""


# --------------------------------------------------------------------------- jars


def pom_kafka_version(pom: Path = POM_PATH) -> str:
    """The ``kafka.version`` property of ``tests/kafka/pom.xml``."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise KafkaBrokerError(f"no <kafka.version> property in {pom}")
    return node.text.strip()


def ensure_jars(*, mvn: str = "mvn", timeout: float = 600.0) -> Path:
    """Make sure ``build/kafka/lib`` holds the broker jars of the pom's Kafka version.

    Runs ``mvn -q -B -f tests/kafka/pom.xml dependency:copy-dependencies`` when the
    directory is missing, empty, or holds another Kafka version. Returns the directory.
    """
    lib_dir = LIB_DIR
    version = pom_kafka_version()
    marker = lib_dir / f"kafka_2.13-{version}.jar"

    def ready() -> bool:  # exactly this version's jars (a manual re-copy can leave old ones)
        return [p.name for p in lib_dir.glob("kafka_2.13-*.jar")] == [marker.name]

    if ready():
        return lib_dir
    lib_dir.parent.mkdir(parents=True, exist_ok=True)
    # Serialise concurrent callers (e.g. pytest-xdist workers) on a lock file.
    with open(lib_dir.parent / ".ensure_jars.lock", "w") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - non-POSIX
            pass
        if ready():
            return lib_dir
        if shutil.which(mvn) is None:
            raise KafkaBrokerError(
                f"{lib_dir} has no Kafka {version} jars and {mvn!r} is not on PATH; "
                f"run: mvn -q -B -f {POM_PATH.relative_to(REPO_ROOT)} dependency:copy-dependencies"
            )
        shutil.rmtree(lib_dir, ignore_errors=True)  # drop jars of another version
        cmd = [mvn, "-q", "-B", "-f", str(POM_PATH), "dependency:copy-dependencies"]
        proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0 or not ready():
            raise KafkaBrokerError(
                f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{_tail(proc.stdout + proc.stderr, 60)}"
            )
    return lib_dir


# --------------------------------------------------------------------------- helpers


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def random_cluster_id() -> str:
    """A cluster id in Kafka's Uuid format (URL-safe base64 of 16 bytes, unpadded).

    Like Kafka's ``Uuid.randomUuid()`` it never starts with "-", which command-line
    parsers would take for an option.
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise KafkaBrokerError("no java found (set JAVA_HOME or put java on PATH); Kafka needs Java 11+")
    return java


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """preexec_fn: on Linux, SIGTERM the broker when the process that started it dies."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- broker


class KafkaBroker:
    """One Kafka broker+controller (KRaft, node.id=1) in a subprocess, on localhost.

    ``port``/``controller_port`` default to free ports. ``extra_properties`` are added to
    (and override) the generated server.properties. ``lib_dir`` defaults to
    ``build/kafka/lib`` (filled by ``ensure_jars()``); another directory of broker jars
    is used as-is. ``keep_dir`` keeps the temp dir (data + ``broker.log``) after
    ``stop()``. ``die_with_parent`` (Linux) makes the kernel SIGTERM the broker if the
    *thread* that started it exits, so a killed test run leaves no stray JVM; turn it
    off when starting from a short-lived thread.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        controller_port: int | None = None,
        startup_timeout: float = 90.0,
        heap: str = "512m",
        extra_properties: Mapping[str, object] | None = None,
        jvm_args: list[str] | None = None,
        lib_dir: Path | None = None,
        keep_dir: bool = False,
        die_with_parent: bool = True,
    ) -> None:
        self.host = host
        self._fixed_port = port
        self._fixed_controller_port = controller_port
        self.port: int | None = None
        self.controller_port: int | None = None
        self.startup_timeout = startup_timeout
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self.jvm_args = list(jvm_args or [])
        self.lib_dir = Path(lib_dir) if lib_dir is not None else None
        self.keep_dir = keep_dir
        self.die_with_parent = die_with_parent
        self.cluster_id: str | None = None
        self.workdir: Path | None = None
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public API -------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None or not self.running:
            raise KafkaBrokerError("broker is not running")
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "broker.log" if self.workdir else None

    def log_tail(self, lines: int = 60) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no broker log)"
        return _tail(path.read_text(errors="replace"), lines)

    def log_report(self, lines: int = 40) -> str:
        """The log's first ERROR/FATAL lines (the cause; shutdown noise follows it) + its tail."""
        path = self.log_path
        if path is None or not path.exists():
            return "(no broker log)"
        text = path.read_text(errors="replace")
        errors = [ln for ln in text.splitlines() if " ERROR " in ln or " FATAL " in ln][:10]
        first = "first ERROR lines:\n" + "\n".join(errors) + "\n" if errors else ""
        return f"{first}broker log ({path}) tail:\n{_tail(text, lines)}"

    def start(self) -> KafkaBroker:
        if self._proc is not None:
            raise KafkaBrokerError("broker already started")
        if self.workdir is not None and (self.workdir / "server.properties").exists():
            return self._restart()  # stopped with keep_data: the same broker again
        if self.lib_dir is None:
            self.lib_dir = ensure_jars()
        elif not any(self.lib_dir.glob("kafka_2.13-*.jar")):
            raise KafkaBrokerError(f"no kafka_2.13-*.jar in lib_dir={self.lib_dir}")
        java = find_java()
        t0 = time.monotonic()
        # A free port can be taken between probing and binding: retry with new ports.
        attempts = 1 if (self._fixed_port or self._fixed_controller_port) else 3
        for attempt in range(attempts):
            try:
                self._start_once(java)
                break
            except _PortClash:
                self._cleanup()
                if attempt == attempts - 1:
                    raise KafkaBrokerError("broker ports kept clashing") from None
            except BaseException:
                self._cleanup()
                raise
        self.startup_seconds = time.monotonic() - t0
        _live_brokers.add(self)
        return self

    def stop(self, timeout: float = 15.0, *, keep_data: bool = False) -> None:
        """SIGTERM (controlled shutdown), SIGKILL after ``timeout``; remove the temp dir.

        ``keep_data``: stop the process only, keeping the data dir, ports and cluster id, so that
        a later ``start()`` brings the same broker back, with its topics and messages (a broker
        outage, for fault tests).
        """
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if keep_data and self.workdir is not None:
            self._proc = None  # still in _live_brokers: its data dir goes at exit
            return
        _live_brokers.discard(self)
        self._cleanup()

    def __enter__(self) -> KafkaBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------

    def _classpath(self) -> str:
        return str(self.lib_dir / "*")

    def _jvm(self, java: str, log4j: str = "log4j.properties") -> list[str]:
        return [
            java,
            f"-Xmx{self.heap}",
            "-Xms64m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self.workdir / log4j}",
            f"-Dkafka.logs.dir={self.workdir}",
            *self.jvm_args,
            "-cp",
            self._classpath(),
        ]

    def _properties(self) -> dict[str, object]:
        h, p, cp = self.host, self.port, self.controller_port
        assert self.workdir is not None
        props: dict[str, object] = {
            "node.id": 1,
            "process.roles": "broker,controller",
            "controller.quorum.voters": f"1@{h}:{cp}",
            "listeners": f"PLAINTEXT://{h}:{p},CONTROLLER://{h}:{cp}",
            "advertised.listeners": f"PLAINTEXT://{h}:{p}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(self.workdir / "data"),
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            # 1 partition instead of 50: the group coordinator is ready much sooner.
            "offsets.topic.num.partitions": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 1,
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "group.initial.rebalance.delay.ms": 0,
            "log.retention.check.interval.ms": 300000,
        }
        props.update(self.extra_properties)
        return props

    def _start_once(self, java: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="kafka-test-"))
        self.port = self._fixed_port or free_port(self.host)
        self.controller_port = self._fixed_controller_port or free_port(self.host)
        while self.controller_port == self.port:
            self.controller_port = free_port(self.host)
        self.cluster_id = random_cluster_id()

        (self.workdir / "log4j.properties").write_text(_LOG4J_PROPERTIES)
        (self.workdir / "log4j-tools.properties").write_text(_LOG4J_TOOLS_PROPERTIES)
        props_path = self.workdir / "server.properties"
        props_path.write_text("".join(f"{k}={v}\n" for k, v in self._properties().items()))

        fmt = subprocess.run(
            [
                *self._jvm(java, "log4j-tools.properties"),
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                f"--cluster-id={self.cluster_id}",
                "-c",
                str(props_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if fmt.returncode != 0:
            raise KafkaBrokerError(
                f"kafka-storage format failed (exit {fmt.returncode}):\n{_tail(fmt.stdout + fmt.stderr, 40)}"
            )

        assert self.log_path is not None
        # The child keeps its own copy of the log file descriptor.
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [*self._jvm(java), "kafka.Kafka", str(props_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,  # Ctrl-C in a terminal goes to Python, which stops us
                preexec_fn=die_with_parent if (self.die_with_parent and sys.platform == "linux") else None,
            )
        self._wait_ready()

    def _restart(self) -> KafkaBroker:
        """Relaunch from the kept data dir, on the same ports, with the same cluster id."""
        assert self.workdir is not None and self.log_path is not None
        t0 = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [*self._jvm(find_java()), "kafka.Kafka", str(self.workdir / "server.properties")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True,
                preexec_fn=die_with_parent if (self.die_with_parent and sys.platform == "linux") else None,
            )
        try:
            self._wait_ready()
        except _PortClash:
            self._cleanup()
            raise KafkaBrokerError(f"port {self.port} or {self.controller_port} was taken while the broker was "
                                   "stopped") from None
        except BaseException:
            self._cleanup()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.port is not None
        deadline = time.monotonic() + self.startup_timeout
        # 1) the listener accepts TCP (avoids librdkafka "connection refused" noise).
        while not _port_open(self.host, self.port):
            self._check_alive()
            if time.monotonic() > deadline:
                self._fail(f"broker did not open {self.host}:{self.port} within {self.startup_timeout:.0f}s")
            time.sleep(0.1)
        # 2) it answers a metadata request listing itself.
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError:  # pragma: no cover - fall back to the log line
            AdminClient = None  # noqa: N806
        while True:
            self._check_alive()
            if AdminClient is not None:
                admin = AdminClient({"bootstrap.servers": f"{self.host}:{self.port}"})
                try:
                    md = admin.list_topics(timeout=2)
                    if md.brokers:
                        return
                except Exception:
                    pass
                finally:
                    del admin
            elif "Kafka Server started" in self.log_tail(200):
                return
            if time.monotonic() > deadline:
                self._fail(f"broker at {self.host}:{self.port} not ready within {self.startup_timeout:.0f}s")
            time.sleep(0.2)

    def _check_alive(self) -> None:
        assert self._proc is not None
        rc = self._proc.poll()
        if rc is None:
            return
        report = self.log_report()
        log_text = self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""
        if "Address already in use" in log_text and not (self._fixed_port or self._fixed_controller_port):
            raise _PortClash()
        raise KafkaBrokerError(f"Kafka broker exited with code {rc} during startup;\n{report}")

    def _fail(self, message: str) -> None:
        raise KafkaBrokerError(f"{message};\n{self.log_report()}")

    def _cleanup(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        self._proc = None
        if self.workdir is not None and not self.keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None


class _PortClash(Exception):
    pass


_live_brokers: weakref.WeakSet[KafkaBroker] = weakref.WeakSet()


@atexit.register
def _stop_live_brokers() -> None:
    for broker in list(_live_brokers):
        with contextlib.suppress(Exception):
            broker.stop(timeout=5)


# --------------------------------------------------------------------------- pytest helper


@contextlib.contextmanager
def kafka_bootstrap(**broker_kwargs: object) -> Iterator[str]:
    """Yield bootstrap servers: ``$KAFKA_BOOTSTRAP_SERVERS`` if set, else a fresh broker's.

    Meant for a session-scoped pytest fixture::

        @pytest.fixture(scope="session")
        def kafka_bootstrap_servers():
            with kafka_bootstrap() as servers:
                yield servers
    """
    external = os.environ.get(ENV_BOOTSTRAP, "").strip()
    if external:
        yield external
        return
    with KafkaBroker(**broker_kwargs) as broker:  # type: ignore[arg-type]
        yield broker.bootstrap_servers


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run a throwaway single-node Kafka (KRaft) broker.")
    parser.add_argument("--port", type=int, default=None, help="broker port (default: a free one)")
    parser.add_argument("--controller-port", type=int, default=None)
    parser.add_argument("--keep-dir", action="store_true", help="keep data dir and broker.log on exit")
    args = parser.parse_args(argv)

    broker = KafkaBroker(port=args.port, controller_port=args.controller_port, keep_dir=args.keep_dir)
    print(f"starting Kafka {pom_kafka_version()} ...", file=sys.stderr, flush=True)
    broker.start()
    print(
        f"Kafka ready in {broker.startup_seconds:.1f}s; log: {broker.log_path}\n"
        f"export {ENV_BOOTSTRAP}={broker.bootstrap_servers}\n"
        "Ctrl-C to stop.",
        file=sys.stderr,
        flush=True,
    )
    print(broker.bootstrap_servers, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while broker.running:
            time.sleep(0.5)
        print(f"broker exited unexpectedly;\n{broker.log_report()}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:
        broker.stop()


if __name__ == "__main__":
    sys.exit(main())
