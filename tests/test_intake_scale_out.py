"""Intake replicas scaled out, end to end, everything real: two ``python -m services.intake`` processes
(BUS=kafka) sharing one PostgreSQL ledger (``LEDGER_DSN``), one ``DIGEST_NONCE_SECRET`` and one
``ACCOUNTS_FILE``, each with a STATE_DIR of its own (local staging only), behind a real Caddy over
HTTPS; a real Kafka broker; a faust worker writing a chDB store where a test checks the store.

``tests/test_intake_replicas.py`` proves the same guarantees on ``IntakeService`` objects; these prove
them as a phone meets them, across processes. A request sent "through Caddy" is spread by its round
robin; one sent "to A" or "to B" goes straight to that replica's port (plain HTTP, so Digest), where
a test needs a part of the story on a given replica.

Tests 1-5 share the replicas (started once for the module, with a database and a topic prefix of
the module's own); each uses instanceIDs and a report day of its own. The SIGKILL test starts
replicas of its own, since it kills one.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from services.bus.admin import ensure_topics
from services.bus.topics import TOPICS
from services.clock import today_local
from services.config import Settings
from services.domain.dead_letters import DeadLetter, Rejection
from services.domain.events import Envelope
from services.domain.reference import Library, default_reference
from services.domain.submission import parse_submission
from services.intake.accounts import add_account
from services.store.aggregates import Aggregates
from services.store.clickhouse import AreaFilter, Store
from services.tools.submissions import fill_instance
from tests import postgres
from tests.caddy import Caddy
from tests.conftest import OPENROSA, digest_header, visit_answers
from tests.intake_processes import IntakeProcess, start_intakes
from tests.published import from_kafka, messages_from_kafka
from tests.races import race
from tests.workers import WorkerProcess, wait_until_caught_up, worker_settings

pytestmark = pytest.mark.kafka

StartCaddy = Callable[..., Caddy]
USER, PASSWORD = "doi-hg", "mat-khau-hg"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
UNUSED = ["127.0.0.1:9"]  # the query route: nothing listens on the discard port, and no test uses it
NEW = "Submission received."
ALREADY = "already received"
PART = "Part received"
HELD = "Edit received"
TODAY = today_local()
HA_GIANG = sorted((lib for lib in default_reference().libraries.values()
                   if lib.area("legacy").province_code == "02"), key=lambda lib: lib.library_id)


@dataclass
class Cluster:
    """Two intake replicas behind Caddy, sharing a ledger, a broker prefix and the Digest secret."""

    a: IntakeProcess
    b: IntakeProcess
    caddy: Caddy
    dsn: str
    bootstrap: str
    prefix: str
    xform: bytes

    def submission(self, instance_id: str, library: Library, day: date, total: int,
                   deprecated_id: str | None = None) -> bytes:
        # loans vary with the total too: the store's answer tells one racer's answers from another's
        return fill_instance(self.xform, visit_answers(library, day, total=total, loans=total // 2), instance_id,
                             deprecated_id=deprecated_id)

    def accepted(self, instance_id: str | None = None) -> list[tuple[str, str, str]]:
        """The ledger's ``accepted`` rows (instance_id, root_id, content_hash), of one instanceID if given."""
        with psycopg.connect(self.dsn) as db:
            rows = db.execute("SELECT instance_id, root_id, content_hash FROM accepted "
                              "WHERE %(id)s::text IS NULL OR instance_id = %(id)s ORDER BY seq",
                              {"id": instance_id}).fetchall()
        return [tuple(row) for row in rows]  # type: ignore[misc]

    def events(self, instance_id: str | None = None) -> list[Envelope]:
        """The events in Kafka (every event topic), of one instanceID if given."""
        return [e for _, e in from_kafka(self.bootstrap, self.prefix) if instance_id in (None, e.event_id)]

    def everything(self) -> list[object]:
        """Every message on every topic the intake writes (events, dead letters, rejections)."""
        return [m for _, m in messages_from_kafka(self.bootstrap, self.prefix, [t.name for t in TOPICS])]


# --- requests -----------------------------------------------------------------------------------------


def files(xml: bytes, *attachments: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """A multipart body as ODK Collect sends it: the XML part, then each attachment by its file name."""
    return [("xml_submission_file", ("submission.xml", xml, "text/xml")),
            *((name, (name, data, "image/jpeg")) for name, data in attachments)]


def challenge(replica: IntakeProcess) -> str:
    """A fresh Digest challenge (a new nonce) from the replica, as Collect gets it on its first request."""
    refused = httpx.head(f"{replica.url}/submission", headers=OPENROSA, timeout=10)
    assert refused.status_code == 401, refused.text
    return refused.headers["WWW-Authenticate"]


def digest(replica: IntakeProcess, nc: int = 1, of: str | None = None) -> str:
    """An Authorization header for POST /submission, on a nonce the replica just issued (or ``of``)."""
    return digest_header(USER, PASSWORD, "POST", "/submission", of or challenge(replica), nc)


def to_replica(replica: IntakeProcess, xml: bytes, *attachments: tuple[str, bytes], incomplete: bool = False,
               authorization: str | None = None) -> httpx.Response:
    """POST straight to one replica's port (plain HTTP: Digest, as Collect does without TLS)."""
    return httpx.post(f"{replica.url}/submission", files=files(xml, *attachments),
                      data={"*isIncomplete*": "yes"} if incomplete else None, timeout=60,
                      headers={**OPENROSA, "Authorization": authorization or digest(replica)})


def through_caddy(client: httpx.Client, xml: bytes) -> httpx.Response:
    """POST through Caddy over HTTPS (Basic: Caddy says https, and the replicas believe it from 127.0.0.1)."""
    return client.post("/submission", files=files(xml), headers={**OPENROSA, "Authorization": BASIC})


def race_http(sends: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Every send at once (``race``); each one must have been answered."""
    outcomes = race(sends)
    failed = [o for o in outcomes if not isinstance(o, httpx.Response)]
    assert not failed, failed
    return outcomes  # type: ignore[return-value]


# --- the store ----------------------------------------------------------------------------------------


def caught_up_store(settings: Settings, tmp_path: Path, bootstrap: str, prefix: str) -> Store:
    """A faust worker (a group of its own) over a chDB store in ``tmp_path``, run until it has written every
    message of the prefix, then stopped (chDB: one process per data directory); the store, opened here."""
    group = f"g{uuid.uuid4().hex[:8]}"
    ensure_topics(bootstrap, prefix, group=group)
    configured = worker_settings(settings, tmp_path, bootstrap=bootstrap, prefix=prefix, group=group, name=group,
                                 store=f"chdb://{tmp_path / f'store-{group}'}")
    worker = WorkerProcess(configured, tmp_path / f"worker-{group}.log").start()
    try:
        wait_until_caught_up(worker, timeout_s=120)
    finally:
        worker.stop()
    return Store(configured.store_dsn)


def visits(store: Store, library: Library, day: date) -> list[dict]:
    """What the store shows for one library on one day (the query API's /v1/visits reads the same)."""
    return Aggregates(store, default_reference()).visits(AreaFilter("legacy", library_id=library.library_id), day,
                                                         day, "day")


def store_rows(store: Store, table: str, instance_id: str) -> list[dict]:
    return store.select(f"SELECT * FROM {table} FINAL WHERE instance_id = {{id:String}}", {"id": instance_id})


# --- the replicas ---------------------------------------------------------------------------------------


def accounts_file(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "accounts.json"
    add_account(path, USER, PASSWORD, ["legacy:02"])  # written 0600, as the intake requires
    return path


def replica_env(dsn: str, accounts: Path) -> dict[str, str]:
    return {"LEDGER_DSN": dsn, "ACCOUNTS_FILE": str(accounts),
            # the same on every replica: a nonce one issued, the other accepts
            "DIGEST_NONCE_SECRET": f"one secret for every replica {uuid.uuid4().hex}"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, forms_dir: Path, kafka_bootstrap_servers: str,
            postgres_server: str) -> Iterator[Cluster]:
    """Started once for tests 1-5: a database and a topic prefix of the module's own, two replicas, Caddy."""
    tmp = tmp_path_factory.mktemp("scale-out")
    prefix = f"so{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap_servers, prefix)
    dsn = postgres.create_database(postgres_server)
    replicas: list[IntakeProcess] = []
    caddy: Caddy | None = None
    try:
        replicas = start_intakes(["a", "b"], tmp, forms_dir=forms_dir, bootstrap=kafka_bootstrap_servers,
                                 prefix=prefix, env=replica_env(dsn, accounts_file(tmp)))
        caddy = Caddy([r.address for r in replicas], UNUSED).start()
        yield Cluster(replicas[0], replicas[1], caddy, dsn, kafka_bootstrap_servers, prefix,
                      (forms_dir / "visit_log.xml").read_bytes())
    finally:
        if caddy is not None:
            caddy.stop()
        for replica in replicas:
            replica.stop()
        postgres.drop_database(postgres_server, dsn)


@pytest.fixture
def ids() -> Callable[[str], str]:
    """instanceIDs unique to the test (the module's replicas, ledger and topics are shared)."""
    run = uuid.uuid4().hex[:8]
    return lambda name: f"uuid:{name}-{run}"


# --- 1. a race across replicas: one winner, and every record agrees --------------------------------------


def test_one_instance_id_raced_across_replicas_has_one_winner_everywhere(
        cluster: Cluster, ids: Callable[[str], str], settings: Settings, tmp_path: Path):
    library, day, instance_id = HA_GIANG[0], TODAY - timedelta(days=3), ids("race")
    totals = [20 + n for n in range(12)]  # twelve different answers under one instanceID
    xmls = [cluster.submission(instance_id, library, day, total) for total in totals]
    # 4 through Caddy (spread by its round robin), 4 straight to A, 4 straight to B; each direct
    # one on a nonce of its own (a nonce's counts must rise, and racing requests would arrive in any order).
    headers = [None if n < 4 else digest(cluster.a if n < 8 else cluster.b) for n in range(12)]
    with cluster.caddy.client() as phone:
        sends = [(lambda xml=xml: through_caddy(phone, xml)) if n < 4 else
                 (lambda xml=xml, n=n, h=headers[n]: to_replica(cluster.a if n < 8 else cluster.b, xml,
                                                                authorization=h))
                 for n, xml in enumerate(xmls)]
        responses = race_http(sends)

    statuses = [r.status_code for r in responses]
    assert sorted(statuses) == [201] + [409] * 11, [(r.status_code, r.text) for r in responses]
    winner = statuses.index(201)
    assert NEW in responses[winner].text
    assert all("different answers" in r.text for r in responses if r.status_code == 409)  # why, in words
    won_hash = parse_submission(xmls[winner]).content_hash

    # The ledger: one row, the winner's answers.
    assert cluster.accepted(instance_id) == [(instance_id, instance_id, won_hash)]
    # Kafka: one event, the winner's; each loser turned away is one rejection (409, why), no dead letter.
    [event] = cluster.events(instance_id)
    assert event.content_hash == won_hash and event.submitter == USER
    messages = cluster.everything()
    rejections = [m for m in messages if isinstance(m, Rejection) and m.instance_id == instance_id]
    assert [(r.status, r.reason_code, r.submitter) for r in rejections] == [(409, "instance_id_conflict", USER)] * 11
    assert [m for m in messages if isinstance(m, DeadLetter) and m.instance_id == instance_id] == []

    # The store: the winner's visits, counted once; the 11 rejections recorded, no dead letter.
    store = caught_up_store(settings, tmp_path, cluster.bootstrap, cluster.prefix)
    try:
        [row] = visits(store, library, day)
        assert (row["visits_total"], row["loans"], row["reports"]) == (totals[winner], totals[winner] // 2, 1)
        assert [r["status"] for r in store_rows(store, "rejections", instance_id)] == [409] * 11
        assert store_rows(store, "dead_letters", instance_id) == []
    finally:
        store.close()


# --- 2. an identical resend to the other replica ------------------------------------------------------------


def test_an_identical_resend_to_the_other_replica_is_already_received_and_adds_nothing(
        cluster: Cluster, ids: Callable[[str], str]):
    instance_id = ids("resend")
    xml = cluster.submission(instance_id, HA_GIANG[1], TODAY - timedelta(days=4), total=31)
    first = to_replica(cluster.a, xml)
    assert first.status_code == 201 and NEW in first.text, first.text
    ledger_before, kafka_before = cluster.accepted(), cluster.everything()

    again = to_replica(cluster.b, xml)  # Collect resending after a lost answer; Caddy chose the other replica
    assert again.status_code == 201, again.text
    assert ALREADY in again.text

    assert cluster.accepted() == ledger_before, "nothing new in the ledger"
    assert cluster.everything() == kafka_before, "nothing new in Kafka (no event, no rejection)"
    assert [e.event_id for e in cluster.events(instance_id)] == [instance_id]


# --- 3. a split upload whose parts reach different replicas --------------------------------------------------


def test_a_split_upload_across_replicas_is_one_event_with_every_attachment_in_the_blob_store(
        cluster: Cluster, ids: Callable[[str], str]):
    instance_id = ids("split")
    xml = cluster.submission(instance_id, HA_GIANG[2], TODAY - timedelta(days=5), total=44)
    photos = {name: b"\xff\xd8\xff\xe0" + name.encode() + uuid.uuid4().bytes * 512 for name in ("a.jpg", "b.jpg",
                                                                                                "c.jpg")}
    # Part 1 to A, part 2 to B (each *isIncomplete*=yes), the last to A: it must adopt what B parked.
    for replica, name, incomplete in ((cluster.a, "a.jpg", True), (cluster.b, "b.jpg", True),
                                      (cluster.a, "c.jpg", False)):
        sent = to_replica(replica, xml, (name, photos[name]), incomplete=incomplete)
        assert sent.status_code == 201, sent.text
        assert (PART if incomplete else NEW) in sent.text
        if incomplete:
            assert cluster.events(instance_id) == [], "a part publishes nothing"

    [event] = cluster.events(instance_id)
    assert [(f.name, f.sha256) for f in event.attachments] == \
        [(name, hashlib.sha256(data).hexdigest()) for name, data in sorted(photos.items())]
    with psycopg.connect(cluster.dsn) as db:
        stored = {sha: bytes(data) for sha, data in db.execute(
            "SELECT sha256, data FROM blobs WHERE sha256 = ANY(%s)", ([f.sha256 for f in event.attachments],))}
        leftovers = db.execute("SELECT (SELECT count(*) FROM parked WHERE instance_id = %(id)s) + "
                               "(SELECT count(*) FROM partial WHERE instance_id = %(id)s)",
                               {"id": instance_id}).fetchone()
    assert [stored.get(f.sha256) for f in event.attachments] == [photos[f.name] for f in event.attachments]
    assert leftovers == (0,), "nothing of the upload left parked or partial"
    assert [row[0] for row in cluster.accepted(instance_id)] == [instance_id]


# --- 4. an edit held on one replica, released by the original on the other ------------------------------------


def test_an_edit_held_on_one_replica_is_released_by_its_original_on_the_other_and_counted_once(
        cluster: Cluster, ids: Callable[[str], str], settings: Settings, tmp_path: Path):
    library, day = HA_GIANG[3], TODAY - timedelta(days=6)
    original_id, edit_id = ids("original"), ids("edit")
    original = cluster.submission(original_id, library, day, total=50)
    edit = cluster.submission(edit_id, library, day, total=57, deprecated_id=original_id)

    held = to_replica(cluster.a, edit)  # the phone's edit overtook its original
    assert held.status_code == 201 and HELD in held.text, held.text
    assert cluster.events(edit_id) == [] and cluster.accepted(edit_id) == []

    sent = to_replica(cluster.b, original)
    assert sent.status_code == 201 and NEW in sent.text, sent.text

    # Released by B as part of accepting the original (before its 201): published and recorded once.
    [released] = cluster.events(edit_id)
    assert (released.root_id, released.deprecated_id, released.submitter) == (original_id, original_id, USER)
    assert cluster.accepted(edit_id) == [(edit_id, original_id, parse_submission(edit).content_hash)]
    with psycopg.connect(cluster.dsn) as db:
        assert db.execute("SELECT count(*) FROM held WHERE instance_id = %s", (edit_id,)).fetchone() == (0,)

    store = caught_up_store(settings, tmp_path, cluster.bootstrap, cluster.prefix)
    try:
        [row] = visits(store, library, day)
        assert (row["visits_total"], row["loans"], row["reports"]) == (57, 57 // 2, 1), "the edit, once"
    finally:
        store.close()


# --- 5. a Digest header replayed to the other replica ---------------------------------------------------------


def test_a_digest_header_accepted_by_one_replica_is_refused_when_replayed_to_the_other(
        cluster: Cluster, ids: Callable[[str], str]):
    day = TODAY - timedelta(days=7)
    nonce_of_a = challenge(cluster.a)
    captured = digest(cluster.a, nc=1, of=nonce_of_a)
    first = to_replica(cluster.a, cluster.submission(ids("digest-1"), HA_GIANG[0], day, 12), authorization=captured)
    assert first.status_code == 201, first.text

    # Someone who captured the header sends it, same nonce and nc, with a submission of their own to B.
    forged_id = ids("digest-replayed")
    replayed = to_replica(cluster.b, cluster.submission(forged_id, HA_GIANG[0], day, 999), authorization=captured)
    assert replayed.status_code == 401, replayed.text
    assert "stale=true" in replayed.headers["WWW-Authenticate"]
    assert cluster.accepted(forged_id) == [] and cluster.events(forged_id) == []

    # The phone itself goes on with its next count on that nonce, at either replica.
    after = to_replica(cluster.b, cluster.submission(ids("digest-2"), HA_GIANG[0], day, 13),
                       authorization=digest(cluster.b, nc=2, of=nonce_of_a))
    assert after.status_code == 201 and NEW in after.text, after.text


# --- 6. a replica SIGKILLed under load ------------------------------------------------------------------------


def test_a_replica_killed_under_load_loses_nothing_and_counts_nothing_twice(
        caddy_proxy: StartCaddy, forms_dir: Path, kafka_bootstrap_servers: str, ledger_dsn: str,
        settings: Settings, tmp_path: Path):
    prefix = f"kill{uuid.uuid4().hex[:8]}."
    ensure_topics(kafka_bootstrap_servers, prefix)
    a, b = start_intakes(["a", "b"], tmp_path, forms_dir=forms_dir, bootstrap=kafka_bootstrap_servers,
                         prefix=prefix, env=replica_env(ledger_dsn, accounts_file(tmp_path)))
    try:
        # HEALTH_INTERVAL 1s: Caddy's active check takes the dead replica out of the rotation quickly.
        caddy = caddy_proxy(intake=[a.address, b.address], query=UNUSED, env={"HEALTH_INTERVAL": "1s"})
        xform = (forms_dir / "visit_log.xml").read_bytes()
        run = uuid.uuid4().hex[:8]
        count, senders = 200, 4
        sent: dict[str, tuple[bytes, Library, date, int]] = {}
        for n in range(count):
            library, day, total = HA_GIANG[n % 4], TODAY - timedelta(days=10 + n // 4), 10 + n % 37
            instance_id = f"uuid:load-{run}-{n:03d}"
            sent[instance_id] = (fill_instance(xform, visit_answers(library, day, total=total), instance_id),
                                 library, day, total)
        order = list(sent)
        outcome: dict[str, str] = {}  # instanceID → "201" or what went wrong
        done = threading.Semaphore(0)

        def send(share: list[str]) -> None:
            with caddy.client() as phone:
                for instance_id in share:
                    try:
                        response = through_caddy(phone, sent[instance_id][0])
                        outcome[instance_id] = str(response.status_code)
                    except httpx.HTTPError as exc:  # the connection itself broke: Collect keeps it, retries
                        outcome[instance_id] = repr(exc)
                    done.release()

        threads = [threading.Thread(target=send, args=(order[i::senders],)) for i in range(senders)]
        for thread in threads:
            thread.start()
        for _ in range(count // 3):  # a third of the load answered, then B dies with requests in flight
            done.acquire()
        b.kill()
        for thread in threads:
            thread.join()

        accepted_first = {i for i, status in outcome.items() if status == "201"}
        failed = [i for i in order if i not in accepted_first]
        assert len(outcome) == count
        assert failed, "B died with requests in flight or routed to it: some must have failed"
        assert set(Counter(outcome[i] for i in failed)) <= {"502", "503"}, Counter(outcome[i] for i in failed)

        # Every 201 is in Kafka (at least once: a replica dying between publish and its ledger commit
        # leaves an event whose phone got no 201, and the resend publishes it again).
        published = Counter(e.event_id for _, e in from_kafka(kafka_bootstrap_servers, prefix))
        assert accepted_first <= set(published), sorted(accepted_first - set(published))[:5]

        # Collect resends what got no 201, and again while it fails: until Caddy's check takes B out
        # (HEALTH_INTERVAL 1s), a resend routed to B still gets 502. A deadline, not a fixed wait.
        resent: dict[str, httpx.Response] = {}
        deadline = time.monotonic() + 60
        with caddy.client() as phone:
            while len(resent) < len(failed) and time.monotonic() < deadline:
                for i in (i for i in failed if i not in resent):
                    try:
                        response = through_caddy(phone, sent[i][0])
                    except httpx.HTTPError:
                        continue
                    if response.status_code == 201:
                        resent[i] = response
                    else:
                        assert response.status_code in (502, 503), (i, response.status_code, response.text)
                time.sleep(0.2)
        assert set(resent) == set(failed), "every resend answered 201 once B was out of the rotation"
        assert all(NEW in r.text or ALREADY in r.text for r in resent.values())
        assert a.process.poll() is None

        events = from_kafka(kafka_bootstrap_servers, prefix)
        published = Counter(e.event_id for _, e in events)
        assert set(published) == set(sent), "every submission in Kafka"
        duplicates = {i: n for i, n in published.items() if n > 1}
        # Only a submission whose phone got no 201 can be in twice (published, then B died before its
        # ledger commit; the resend published it again): a 201 is published exactly once.
        assert set(duplicates) <= set(failed) and set(duplicates.values()) <= {2}, duplicates
        hashes = {(e.event_id, e.content_hash) for _, e in events}
        assert len(hashes) == count, "a duplicate event is the same submission, byte for byte in its answers"
        with psycopg.connect(ledger_dsn) as db:
            recorded = db.execute("SELECT count(*), count(DISTINCT instance_id) FROM accepted").fetchone()
        assert recorded == (count, count), "the ledger records each submission once"
    finally:
        a.stop()
        b.stop()

    # The store counts each submission once: the sums of what was sent, one report each.
    store = caught_up_store(settings, tmp_path, kafka_bootstrap_servers, prefix)
    try:
        days = [day for _, _, day, _ in sent.values()]
        rows = Aggregates(store, default_reference()).visits(AreaFilter("legacy", "02"), min(days), max(days), "day")
        assert sum(r["visits_total"] for r in rows) == sum(total for *_, total in sent.values())
        assert sum(r["reports"] for r in rows) == count
        [archived] = store.select("SELECT count() AS n, uniqExact(event_id) AS ids FROM events FINAL")
        assert (archived["n"], archived["ids"]) == (count, count)
    finally:
        store.close()
