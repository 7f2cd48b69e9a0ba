"""Submissions posted to an intake as phones do: streams of visit logs with edits, and threads sending
them at a rate, every outcome kept (the distributed fault and many-worker tests)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from fastapi.testclient import TestClient

from services.clock import today_local
from services.domain.reference import default_reference
from services.domain.submission import parse_submission
from services.tools.submissions import fill_instance, multipart
from tests.conftest import visit_answers


@dataclass(frozen=True)
class Submission:
    instance_id: str
    content_hash: str
    xml: bytes

    @classmethod
    def of(cls, xml: bytes) -> Submission:
        parsed = parse_submission(xml)
        return cls(parsed.instance_id, parsed.content_hash, xml)


def visit_streams(xform: bytes, count: int, rng: random.Random, senders: int) -> list[list[Submission]]:
    """``count`` visit logs over the sample libraries, one list per sender, each library on one sender
    (so a library's versions go in order); about one in eight is edited a few submissions later."""
    libraries = sorted(default_reference().libraries.values(), key=lambda lib: lib.library_id)
    today = today_local()
    streams: list[list[Submission]] = [[] for _ in range(senders)]
    pending: list[list[tuple[int, Submission]]] = [[] for _ in range(senders)]  # edits, due at a position

    for i in range(count):
        index = i % len(libraries)
        library, lane = libraries[index], index % senders
        day = today - timedelta(days=1 + rng.randrange(400))
        instance = f"uuid:{uuid.UUID(int=rng.getrandbits(128))}"
        streams[lane].append(Submission.of(fill_instance(
            xform, visit_answers(library, day, total=rng.randrange(5, 200)), instance)))
        if rng.random() < 0.125:
            edit = f"uuid:{uuid.UUID(int=rng.getrandbits(128))}"
            due = len(streams[lane]) + rng.randrange(1, 6)
            pending[lane].append((due, Submission.of(fill_instance(
                xform, visit_answers(library, day, total=rng.randrange(5, 200)), edit, deprecated_id=instance))))
        for due, edit_submission in [p for p in pending[lane] if p[0] <= len(streams[lane])]:
            streams[lane].append(edit_submission)
            pending[lane].remove((due, edit_submission))
    for lane in range(senders):
        streams[lane] += [s for _, s in pending[lane]]
    return streams


@dataclass
class Outcome:
    submission: Submission
    status: int
    headers: httpx.Headers
    text: str
    at: float


@dataclass
class Senders:
    """Threads posting the streams to the intake as Collect does, at ``rate`` submissions a second in all
    (``None``: as fast as the intake answers), each outcome kept."""

    intake: TestClient
    streams: list[list[Submission]]
    rate: float | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def post(self, submission: Submission) -> Outcome:
        response = self.intake.post("/submission", files=multipart(submission.xml))
        outcome = Outcome(submission, response.status_code, response.headers, response.text, time.monotonic())
        with self._lock:
            self.outcomes.append(outcome)
        return outcome

    def _run(self, stream: list[Submission]) -> None:
        try:
            for submission in stream:
                started = time.monotonic()
                self.post(submission)
                rate = self.rate
                if rate:
                    time.sleep(max(0.0, len(self.streams) / rate - (time.monotonic() - started)))
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.errors.append(exc)

    def start(self) -> Senders:
        self._threads = [threading.Thread(target=self._run, args=(s,), daemon=True) for s in self.streams]
        for thread in self._threads:
            thread.start()
        return self

    @property
    def posted(self) -> int:
        return len(self.outcomes)

    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not self.running(), f"senders still posting after {timeout_s}s"
        assert not self.errors, self.errors

    def accepted(self) -> dict[str, str]:
        """instanceID → content hash of every submission answered 201."""
        return {o.submission.instance_id: o.submission.content_hash for o in self.outcomes if o.status == 201}

    def wait_until(self, posted: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while self.posted < posted and self.running():
            assert time.monotonic() < deadline, f"only {self.posted} of {posted} posted in {timeout_s}s"
            time.sleep(0.05)
