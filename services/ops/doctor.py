"""``thuvien doctor``: is this configuration able to run, and can it reach what it needs?

One line per check: ``OK``, ``WARN`` (works, but look) or ``FAIL`` (will not work), what was
found, and for anything not OK what to do. The exit code is 1 when any check FAILs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from services.config import Settings, masked_dsn

OK, WARN, FAIL = "OK", "WARN", "FAIL"


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    found: str
    todo: str = ""

    def line(self) -> str:
        todo = f"  → {self.todo}" if self.todo and self.status != OK else ""
        return f"{self.status:<4}  {self.name:<10}  {self.found}{todo}"


# ------------------------------------------------------------------------------ checks


def check_forms(settings: Settings) -> Check:
    from services.domain.forms import FORMS
    from services.domain.reference import default_reference
    from services.intake.catalogue import FormCatalogue

    forms_dir, src_dir = settings.forms_dir, settings.forms_src_dir
    if forms_dir.is_dir() and any(forms_dir.glob("*.xml")):
        try:
            served = FormCatalogue.load(forms_dir, src_dir, default_reference(settings.libraries_file)).forms
        except Exception as exc:
            return Check(FAIL, "forms", f"built forms in {forms_dir} do not load: {exc}",
                         "rebuild them: make forms (or delete FORMS_DIR; the intake rebuilds at start)")
        missing = sorted(set(FORMS) - set(served))
        if missing:
            return Check(FAIL, "forms", f"{forms_dir} lacks {', '.join(missing)}",
                         f"rebuild: python -m services.intake.forms {src_dir} {forms_dir}")
        return Check(OK, "forms", f"{len(served)} forms built in {forms_dir}")
    sources = sorted(src_dir.glob("*.xlsx")) if src_dir.is_dir() else []
    java = shutil.which("java")
    if sources and java:
        return Check(OK, "forms", f"not built in {forms_dir}; buildable: {len(sources)} XLSForms in {src_dir} and "
                                  "Java found (the intake builds them at start)")
    lacking = ([] if sources else [f"no XLSForms in FORMS_SRC_DIR={src_dir}"]) + ([] if java else ["no java"])
    return Check(FAIL, "forms", f"no built forms in FORMS_DIR={forms_dir} and not buildable: {'; '.join(lacking)}",
                 "set FORMS_DIR to the built forms, or install Java and run: make forms")


def check_reference(settings: Settings) -> Check:
    from services.domain.reference import default_reference

    try:
        reference = default_reference(settings.libraries_file)
    except Exception as exc:
        return Check(FAIL, "reference", f"reference data does not load: {exc}",
                     "check LIBRARIES_FILE, or restore services/reference/*.csv from the repository")
    return Check(OK, "reference", f"{len(reference.libraries)} libraries, {len(reference.provinces)} provinces, "
                                  f"{len(reference.communes)} communes (both schemes)")


def _readable(path: str, name: str, env: str, load: Callable[[Path], str]) -> Check:
    try:
        return Check(OK, name, load(Path(path)))
    except FileNotFoundError:
        return Check(FAIL, name, f"{env}={path} does not exist", f"create it or fix {env}")
    except PermissionError:
        return Check(FAIL, name, f"{env}={path} is not readable by this user", "fix its permissions")
    except Exception as exc:
        return Check(FAIL, name, f"{env}={path} does not load: {exc}", f"fix the file or {env}")


def check_accounts(settings: Settings) -> Iterator[Check]:
    from services.intake.accounts import Accounts

    if not settings.accounts_file:
        yield Check(WARN, "accounts", "ACCOUNTS_FILE is not set: the intake accepts anyone (demo only)",
                    "python -m services.intake.accounts FILE USER PASSWORD legacy:02 …, then set ACCOUNTS_FILE")
    else:
        check = _readable(settings.accounts_file, "accounts", "ACCOUNTS_FILE",
                          lambda p: f"{len(Accounts.load(p).by_name)} accounts in {p}")
        yield check
        if check.status == OK and settings.bus == "kafka" and not settings.digest_nonce_secret:
            yield Check(WARN, "accounts", "DIGEST_NONCE_SECRET is not set: each intake replica signs its own nonces",
                        "set the same DIGEST_NONCE_SECRET on every intake replica")
    if settings.api_keys_file:
        yield _readable(settings.api_keys_file, "api keys", "API_KEYS_FILE",
                        lambda p: f"{len(json.loads(p.read_text('utf-8')))} query API keys in {p}")
    elif settings.bus == "kafka":
        yield Check(WARN, "api keys", "API_KEYS_FILE is not set: the query service will not start on this host",
                    "python -m services.query.access add FILE NAME read:all, then set API_KEYS_FILE=FILE")


def check_state_dir(settings: Settings) -> Check:
    path = settings.state_dir
    probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        return Check(FAIL, "state", f"STATE_DIR={path} is not writable ({probe})", "fix STATE_DIR or its permissions")
    return Check(OK, "state", f"STATE_DIR={path} " + ("exists, writable" if path.exists() else "will be created"))


def check_store(settings: Settings) -> Iterator[Check]:
    from services.store.clickhouse import Store
    from services.store.migrations import load_migrations

    dsn = settings.store_dsn
    if dsn.startswith("chdb://"):
        path = Path(dsn.removeprefix("chdb://"))
        if not path.exists() or not any(path.iterdir()):
            yield Check(WARN, "store", f"no chDB store at {path} yet",
                        "the first start of the stack/worker creates it and applies the migrations")
            return
        yield Check(WARN, "store", f"chDB at {path}: one process owns a chDB directory",
                    "stop the running stack (make run) or worker using it before `thuvien doctor`, else it cannot "
                    "open the store")
    try:
        store = Store(dsn)
    except Exception as exc:
        text = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        todo = ("most likely a running stack or worker holds this chDB directory (one process each): stop it "
                "and run doctor again; else check the path and its permissions" if dsn.startswith("chdb://")
                else "check STORE_DSN (host, port, database, user, password) and that ClickHouse is up")
        yield Check(FAIL, "store", f"cannot open STORE_DSN={masked_dsn(dsn)}: {text}", todo)
        return
    try:
        wanted = {m.version: m.name for m in load_migrations()}
        try:
            applied = {row["version"] for row in store.select("SELECT version FROM schema_migrations FINAL")}
        except Exception:
            applied = set()
        missing = sorted(set(wanted) - applied)
        if missing:
            yield Check(FAIL, "store", f"{masked_dsn(dsn)} reachable; migrations not applied: "
                                       f"{', '.join(f'{v:03d}_{wanted[v]}' for v in missing)}",
                        "start the stack, the worker or the query service once: they migrate at start-up")
        else:
            yield Check(OK, "store", f"{masked_dsn(dsn)} reachable, {len(applied)} migrations applied")
    finally:
        store.close()


def check_kafka(settings: Settings) -> Iterator[Check]:
    from services.ops import broker

    servers = settings.kafka_bootstrap_servers
    try:
        admin = broker.admin_client(settings)
        metadata = admin.list_topics(timeout=10)
    except Exception as exc:
        yield Check(FAIL, "kafka", f"no broker answers at KAFKA_BOOTSTRAP_SERVERS={servers}: {exc}",
                    "check the address and that Kafka is up (docker compose ps kafka)")
        return
    yield Check(OK, "kafka", f"{len(metadata.brokers)} broker(s) at {servers}")
    states = broker.topic_states(settings, broker.declared_topics(settings.processor_group), admin=admin)
    bad = [s for s in states if not s.matches]
    for state in bad:
        todo = ("create it: thuvien topics --apply" if not state.exists
                else "the layout differs from services/bus/topics.py: add partitions with kafka-topics --alter, or "
                     "recreate the topic")
        yield Check(FAIL, "topics", f"{state.name}: {state.problem()}", todo)
    if not bad:
        yield Check(OK, "topics", f"{len(states)} declared topics exist with their partitions and cleanup policy "
                                  f"(prefix {settings.kafka_topic_prefix!r}, group {settings.processor_group})")


def check_central(settings: Settings) -> Iterator[Check]:
    """One line per pulled form, from the state the pull keeps beside its cursors (``central_state.py``)."""
    from services.intake.central_state import read_states

    states = read_states(settings.state_dir / "central")
    if not settings.central_config and not states:
        return  # no pull configured here, none has run
    if settings.central_config:
        yield _readable(settings.central_config, "central", "CENTRAL_CONFIG", _pyodk_config)
    if not states:
        yield Check(WARN, "central", f"no ODK Central poll recorded in {settings.state_dir / 'central'} yet",
                    "start the pull: make run with CENTRAL_CONFIG set, or thuvien central pull (compose: the "
                    "central-pull service, profile central)")
    for state in states:
        ok, line = state.health(settings.central_poll_interval_s)
        yield Check(OK if ok else WARN, "central", line,
                    "check that ODK Central answers at " + (state.central_url or "its base_url") + " and that the "
                    "pull runs (its log says why a poll stopped); it retries every CENTRAL_POLL_INTERVAL_S")


def _pyodk_config(path: Path) -> str:
    import tomllib

    central = tomllib.loads(path.read_text("utf-8"))["central"]
    missing = [key for key in ("base_url", "username", "password") if not central.get(key)]
    if missing:
        raise ValueError(f"[central] lacks {', '.join(missing)}")
    return f"pyodk config {path}: {central['base_url']} as {central['username']}"


# ------------------------------------------------------------------------------ the command


def run_checks(settings: Settings) -> Iterator[Check]:
    yield Check(OK, "settings", f"BUS={settings.bus}, STORE_DSN={masked_dsn(settings.store_dsn)}, "
                                f"STATE_DIR={settings.state_dir}, LOG_FORMAT={settings.log_format}")
    yield check_forms(settings)
    yield check_reference(settings)
    yield from check_accounts(settings)
    yield check_state_dir(settings)
    yield from check_store(settings)
    yield from check_central(settings)
    if settings.bus == "kafka":
        yield from check_kafka(settings)


def doctor(settings: Settings | None, settings_error: Exception | None = None, out: IO[str] | None = None) -> int:
    out = out or sys.stdout
    if settings is None:
        print(Check(FAIL, "settings", f"the environment does not parse: {settings_error}",
                    "fix that variable (README, Configuration)").line(), file=out)
        return 1
    failed = False
    for check in run_checks(settings):
        print(check.line(), file=out, flush=True)
        failed |= check.status == FAIL
    print("doctor: " + ("some checks FAILED" if failed else "all checks passed"), file=out)
    return 1 if failed else 0
