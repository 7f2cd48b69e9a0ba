"""Wiring, in one place: which adapters each service gets, embedded or distributed.

- ``embedded_stack``: one process: intake + processors + query on one FastAPI app,
  the SQLite log as bus, chDB as store; the processors are ``processors/embedded.py``'s runner
  of the declared pipeline.
- ``intake_app`` / ``query_app``: the distributed services (Kafka bus; ClickHouse server).
  The faust worker runs the same declared pipeline (``services/processors/worker.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI

from services.bus.base import Publisher
from services.bus.embedded import EmbeddedLog
from services.bus.kafka import KafkaPublisher
from services.config import Settings, masked_dsn
from services.domain.directory import LibraryDirectory
from services.domain.forms import FORMS
from services.domain.reference import Reference, default_reference
from services.embedded.lock import StackLock, StackRunning
from services.intake.accounts import Account, Accounts
from services.intake.catalogue import FormCatalogue
from services.intake.digest import NONCE_LIFETIME_S, DigestAuthenticator, NonceCounts
from services.intake.ledger import Ledger, SqliteLedger
from services.intake.openrosa import openrosa_router
from services.intake.postgres.database import LedgerDatabase
from services.intake.postgres.ledger import PostgresLedger
from services.intake.postgres.nonce_counts import PostgresNonceCounts
from services.intake.registry import ledger_registry_changes
from services.intake.service import IntakeService
from services.intake.upload import Limits
from services.login_throttle import LoginThrottle, ThrottlePolicy
from services.processors.embedded import EmbeddedRunner
from services.processors.pipeline import pipeline_for
from services.query import api as query_api
from services.query.access import ApiKeys
from services.query.dashboard import dashboard_router
from services.query.deps import QueryServices
from services.store.clickhouse import Store
from services.web import create_app

if TYPE_CHECKING:
    from pyodk.client import Client

    from services.intake.central import CentralPoller, PullLoop

log = logging.getLogger(__name__)


def _intake_service(settings: Settings, reference: Reference, publisher: Publisher,
                    ledger: Ledger) -> tuple[FormCatalogue, IntakeService]:
    # One view of the registry for the parsers and the form media: the seed plus the registry form's
    # chains in this intake's ledger (services/domain/directory.py says why the ledger).
    directory = LibraryDirectory(reference, lambda: ledger_registry_changes(ledger), settings.registry_refresh_s)
    catalogue = FormCatalogue.load(settings.forms_dir, settings.forms_src_dir, reference, directory.reference)
    served = {f.form_id: f.version for f in catalogue.forms.values() if f.form_id in FORMS}
    service = IntakeService(reference, ledger, publisher, known_forms=served,
                            held_timeout=timedelta(hours=settings.held_timeout_hours),
                            partial_timeout=timedelta(hours=settings.partial_timeout_hours), directory=directory)
    return catalogue, service


def login_throttle(settings: Settings) -> LoginThrottle:
    """One per process: an address guessing passwords at the intake and keys at the API is one guesser."""
    return LoginThrottle(ThrottlePolicy(settings.auth_max_failures_account, settings.auth_max_failures_address,
                                        settings.auth_lockout_s))


def _accounts(settings: Settings) -> Accounts | None:
    """Digest accounts from ``ACCOUNTS_FILE``; a file others may read stops the start-up here."""
    if not settings.accounts_file:
        log.warning("ACCOUNTS_FILE is not set: the intake accepts submissions without authentication")
        return None
    return Accounts.load(Path(settings.accounts_file))


def _authenticator(settings: Settings, accounts: Accounts | None,
                   counts: NonceCounts | None) -> DigestAuthenticator | None:
    if accounts is None:
        return None
    return DigestAuthenticator(accounts, settings.digest_nonce_secret.encode() or None, counts=counts)


def _ledger(settings: Settings) -> tuple[Ledger, NonceCounts | None]:
    """``LEDGER_DSN``: PostgreSQL, shared with the other intake replicas (Digest nonce counts too);
    empty: SQLite in ``STATE_DIR`` and the nonce counts in this process (None)."""
    if not settings.ledger_dsn:
        return SqliteLedger(settings.state_dir), None
    database = LedgerDatabase(settings.ledger_dsn, settings.ledger_pool_size).open()
    ledger = PostgresLedger(database, settings.state_dir / "raw", settings.max_submission_bytes)
    return ledger, PostgresNonceCounts(database, NONCE_LIFETIME_S)


def _openrosa(settings: Settings, catalogue: FormCatalogue, service: IntakeService, ledger: Ledger,
              authenticator: DigestAuthenticator | None, throttle: LoginThrottle) -> APIRouter:
    limits = Limits(settings.max_submission_bytes, settings.max_attachment_bytes)
    return openrosa_router(catalogue, service, ledger, limits, authenticator, throttle)


class Periodic:
    """Runs ``task`` every ``interval_s`` in a daemon thread until stopped (the intake's sweep)."""

    def __init__(self, task: Callable[[], object], interval_s: float):
        self._task, self._interval_s, self._stop = task, interval_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"periodic-{task.__name__}")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._task()
            except Exception:
                log.exception("periodic %s failed", self._task.__name__)

    def stop(self) -> None:
        self._stop.set()


@dataclass
class EmbeddedStack:
    app: FastAPI
    store: Store
    bus: EmbeddedLog
    processors: EmbeddedRunner
    ledger: Ledger
    service: IntakeService
    # The query API's demo key (ApiKeys.demo) when API_KEYS_FILE is unset: made at start-up,
    # kept only in this process's memory; None when the keys come from the file.
    demo_api_key: str | None = None
    expiry: Periodic | None = None  # the intake's sweep; stopped on close, not only at the app's shutdown
    central: PullLoop | None = None  # the ODK Central pull, when CENTRAL_CONFIG is set
    lock: StackLock | None = None  # this process's claim on STATE_DIR, released last

    def close(self) -> None:
        if self.central is not None:
            self.central.stop()
        if self.expiry is not None:
            self.expiry.stop()
        self.processors.close()
        self.bus.close()
        self.ledger.close()
        self.store.close()
        if self.lock is not None:
            self.lock.release()


def embedded_stack(settings: Settings) -> EmbeddedStack:
    # Secrets files first: one that others may read stops the start-up before anything is opened.
    accounts = _accounts(settings)
    if settings.api_keys_file:
        keys, demo_key = ApiKeys(Path(settings.api_keys_file)), None
    else:
        keys, demo_key = ApiKeys.demo()
    reference = default_reference(settings.libraries_file)
    lock = StackLock(settings.state_dir)  # StackRunning: another process runs a stack on this STATE_DIR
    try:
        return _embedded_stack(settings, accounts, keys, demo_key, reference, lock)
    except BaseException:
        lock.release()
        raise


def _embedded_stack(settings: Settings, accounts: Accounts | None, keys: ApiKeys, demo_key: str | None,
                    reference: Reference, lock: StackLock) -> EmbeddedStack:
    store = Store(settings.store_dsn)
    store.migrate()
    bus = EmbeddedLog(settings.state_dir / "bus.sqlite")
    processors = EmbeddedRunner(bus, store, settings.state_dir, settings.processor_batch_rows,
                                pipeline=pipeline_for(settings))
    processors.drain()  # whatever was accepted before a crash and not yet processed
    processors.start()
    # 201 means durable, not yet folded: a read (the API, the dashboard, a tool) first waits, bounded,
    # for what was accepted before it, so whoever submitted sees it.
    store.read_barrier = lambda: processors.caught_up(settings.embedded_read_wait_s)
    ledger, counts = _ledger(settings)
    authenticator = _authenticator(settings, accounts, counts)
    catalogue, service = _intake_service(settings, reference, bus, ledger)
    expiry = Periodic(service.sweep, 300)
    throttle = login_throttle(settings)
    app = create_app("Thư viện cơ sở — embedded stack", [
        _openrosa(settings, catalogue, service, ledger, authenticator, throttle), query_api.router, dashboard_router(),
    ], on_shutdown=[expiry.stop], state=QueryServices.over(
        store, reference, keys, throttle, rotation_loan_days=settings.rotation_loan_days, publisher=bus,
        central_dir=settings.state_dir / "central", central_interval_s=settings.central_poll_interval_s,
        forms_dir=settings.forms_dir).state())
    stack = EmbeddedStack(app, store, bus, processors, ledger, service, demo_key, expiry)
    if settings.central_config:  # the pull shares this stack's intake and ledger; a down Central only logs
        try:
            stack.central = _pull_loop(settings, service, ledger).start()
        except BaseException:
            stack.close()  # the lock: released by embedded_stack
            raise
    stack.lock = lock
    return stack


def intake_app(settings: Settings) -> FastAPI:
    return distributed_intake(settings)[0]


def distributed_intake(settings: Settings) -> tuple[FastAPI, IntakeService]:
    """The intake service publishing to Kafka, and its IntakeService (Central pull and tests use it too)."""
    accounts = _accounts(settings)
    reference = default_reference(settings.libraries_file)
    publisher = KafkaPublisher(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix,
                               settings.kafka_publish_timeout_s)
    ledger, counts = _ledger(settings)
    authenticator = _authenticator(settings, accounts, counts)
    catalogue, service = _intake_service(settings, reference, publisher, ledger)
    expiry = Periodic(service.sweep, 300)
    app = create_app("Thư viện cơ sở — intake (OpenRosa)",
                     [_openrosa(settings, catalogue, service, ledger, authenticator, login_throttle(settings))],
                     on_shutdown=[expiry.stop, publisher.close, ledger.close])
    return app, service


def query_app(settings: Settings) -> FastAPI:
    """The query service on its own; it will not start without API keys (``API_KEYS_FILE``)."""
    if not settings.api_keys_file:
        raise RuntimeError("API_KEYS_FILE is not set: the query service has no built-in key. Make one with "
                           "`python -m services.query.access add FILE NAME read:all` and set API_KEYS_FILE=FILE.")
    keys = ApiKeys(Path(settings.api_keys_file))  # a missing or malformed file stops the start-up here
    store = Store(settings.store_dsn)
    store.migrate()
    # Approvals and decisions are primary data: published on the bus, as the intake publishes submissions.
    publisher = KafkaPublisher(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix,
                               settings.kafka_publish_timeout_s) if settings.bus == "kafka" else None
    services = QueryServices.over(store, default_reference(settings.libraries_file), keys, login_throttle(settings),
                                  rotation_loan_days=settings.rotation_loan_days, publisher=publisher,
                                  central_dir=settings.state_dir / "central",  # central-pull's, mounted read-only
                                  central_interval_s=settings.central_poll_interval_s,
                                  forms_dir=settings.forms_dir)
    closers = [store.close, *([publisher.close] if publisher else [])]
    return create_app("Thư viện cơ sở — query API", [query_api.router, dashboard_router()],
                      on_shutdown=closers, state=services.state())


@dataclass
class CentralPull:
    """ODK Central pollers (``services/intake/central.py``), one per form, and what to close after them."""

    pollers: list[CentralPoller]
    closers: list[Callable[[], object]]

    def close(self) -> None:
        for close in self.closers:
            close()


def central_pollers(settings: Settings, client: Client, project_id: int, form_ids: Sequence[str],
                    page_size: int = 250) -> CentralPull:
    """Pollers feeding an intake wired as configured: Kafka (``BUS=kafka``), or the embedded stack.

    Embedded, this process owns the SQLite log, the processors and chDB (one process per data
    directory): run it while the one-process stack is stopped, or point it at its own directories.
    PullRefused (one sentence saying what to do) when a running stack holds them, or they do not open.
    """
    if settings.bus == "kafka":
        publisher = KafkaPublisher(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix,
                                   settings.kafka_publish_timeout_s)
        ledger = _ledger(settings)[0]
        _, service = _intake_service(settings, default_reference(settings.libraries_file), publisher, ledger)
        closers: list[Callable[[], object]] = [publisher.close, ledger.close]
    else:
        stack = _stack_for_pull(settings)
        service, ledger, closers = stack.service, stack.ledger, [stack.close]
    pollers = _pollers(settings, client, service, ledger, project_id, form_ids, page_size)
    return CentralPull(pollers, closers)


class PullRefused(RuntimeError):
    """The pull cannot run here; the message is the one sentence to show the operator."""


def _stack_for_pull(settings: Settings) -> EmbeddedStack:
    try:  # without CENTRAL_CONFIG: the command polls itself, the stack must not start a second pull
        return embedded_stack(settings.model_copy(update={"central_config": ""}))
    except StackRunning as exc:
        raise PullRefused(
            f"Refused: {exc}; that stack pulls from ODK Central itself when CENTRAL_CONFIG is set, so restart "
            "`make run` with CENTRAL_CONFIG=your pyodk config (or stop the stack first to pull from the command "
            "line).") from None
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise PullRefused(
            f"Cannot open the embedded stack's data (STORE_DSN={masked_dsn(settings.store_dsn)}, STATE_DIR="
            f"{settings.state_dir}): {first}; run `thuvien doctor` to see what is wrong.") from None


def _pollers(settings: Settings, client: Client, service: IntakeService, ledger: Ledger, project_id: int,
             form_ids: Sequence[str], page_size: int = 250) -> list[CentralPoller]:
    from services.intake.central import CentralPoller

    account = _central_account(settings)
    return [CentralPoller(client, service, settings.state_dir / "central" / f"{project_id}-{form_id}.json",
                          project_id, form_id, account, page_size, attachment_store=ledger.blobs.stage_bytes,
                          attachment_limit=settings.max_attachment_bytes,
                          attachment_wait_h=settings.central_attachment_wait_hours)
            for form_id in form_ids]


def _pull_loop(settings: Settings, service: IntakeService, ledger: Ledger) -> PullLoop:
    """The embedded stack's own pull: CENTRAL_FORMS of CENTRAL_PROJECT_ID (else the config's default project).

    A config file that does not load, or names no project, stops the start (ValueError saying which);
    a Central that does not answer does not: each poll records it and the next interval tries again."""
    from pyodk.client import Client

    from services.intake.central import PullLoop

    cache = settings.state_dir / "central" / "pyodk_cache.toml"  # Central's session token: this user only
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.touch(mode=0o600, exist_ok=True)
    try:
        client = Client(config_path=settings.central_config, cache_path=cache)
    except Exception as exc:
        raise ValueError(f"CENTRAL_CONFIG={settings.central_config} does not load as a pyodk config: {exc}") from None
    project_id = settings.central_project_id or client.project_id
    if not project_id:
        raise ValueError(f"no ODK Central project: set CENTRAL_PROJECT_ID or default_project_id in "
                         f"{settings.central_config}")
    pollers = _pollers(settings, client, service, ledger, int(project_id), settings.central_forms)
    return PullLoop(pollers, settings.central_poll_interval_s, int(project_id))


def _central_account(settings: Settings) -> Account:
    """``CENTRAL_ACCOUNT`` from ``ACCOUNTS_FILE`` (its provinces apply) or, if not there, every province."""
    if settings.accounts_file:
        account = Accounts.load(Path(settings.accounts_file)).get(settings.central_account)
        if account is not None:
            return account
    return Account(settings.central_account, provinces=frozenset({"*"}))
