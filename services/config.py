"""The one place configuration is read.

Every setting is an environment variable; the table in README.md ("Configuration")
lists the same names, defaults and meanings, and ``tests/test_config_docs.py`` keeps the
two in step. Services receive a ``Settings`` object; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parents[1]
TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def check_private(path: Path, setting: str) -> None:
    """Refuse a secrets file (``ACCOUNTS_FILE``'s HA1s are enough to sign in by Digest) that
    group or others may read or write: ValueError saying what to run."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ValueError(f"{setting} {path} may be read or changed by other users (mode {mode:04o}): "
                         f"run `chmod 600 {path}` and start again")


def write_private_json(path: Path, data: object) -> None:
    """Write a secrets file 0600 (never readable by others, even for a moment), replaced whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as out:
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    os.chmod(tmp, 0o600)  # a .tmp left over with other bits keeps them through O_CREAT
    tmp.replace(path)


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


@dataclass(frozen=True)
class Setting:
    """Documentation of one environment variable (rendered into README's table)."""

    env: str
    default: str
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting("BUS", "embedded", "`embedded` (in-process, SQLite log) or `kafka`."),
    Setting("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", "Kafka brokers, `host:port[,host:port]`."),
    Setting("KAFKA_TOPIC_PREFIX", "", "Prefix for every topic name (isolates test runs and environments)."),
    Setting("KAFKA_REPLICATION_FACTOR", "1", "Replication factor for topics created by `services.bus.admin`."),
    Setting("KAFKA_PUBLISH_TIMEOUT_S", "15", "How long intake waits for the broker's ack before answering 503."),
    Setting("STORE_DSN", "chdb://var/store", "`chdb://PATH` (embedded ClickHouse) or `http(s)://HOST:8123/DB`."),
    Setting("STATE_DIR", "var/state", "Intake ledger, raw submissions, embedded log and processor state."),
    Setting("LIBRARIES_FILE", "", "Library registry CSV (columns of `services/reference/libraries.csv`). Empty: the "
            "packaged sample registry of 44 fictional libraries."),
    Setting("FORMS_SRC_DIR", "odk-forms", "XLSForm sources."),
    Setting("FORMS_DIR", "build/forms", "Built XForms served to ODK Collect."),
    Setting("HOST", "127.0.0.1", "Address the HTTP services listen on."),
    Setting("PORT", "8000", "Port of the embedded stack / intake service."),
    Setting("QUERY_PORT", "8001", "Port of the query service when run on its own."),
    Setting("MAX_SUBMISSION_BYTES", "10485760", "Largest accepted submission (XML + attachments), bytes."),
    Setting("MAX_ATTACHMENT_BYTES", "5242880", "Largest accepted attachment (photo, audio…), bytes."),
    Setting("ACCOUNTS_FILE", "", "Team accounts (JSON, HA1 + province scopes). Empty: the intake is open (demo only)."),
    Setting("DIGEST_NONCE_SECRET", "", "Key signing Digest nonces; set the same on every intake replica."),
    Setting("TRUSTED_PROXIES", "", "Addresses (IPs or CIDR networks, comma-separated) of reverse proxies whose "
            "`X-Forwarded-Proto` / `X-Forwarded-For` are believed (Basic auth needs HTTPS). Empty: none, the "
            "connection itself is what counts."),
    Setting("AUTH_MAX_FAILURES_ACCOUNT", "5", "Wrong passwords for one account before it is locked out (Digest, "
            "Basic)."),
    Setting("AUTH_MAX_FAILURES_ADDRESS", "20", "Wrong passwords or API keys from one client address before it is "
            "locked out."),
    Setting("AUTH_LOCKOUT_S", "30", "First lock-out, seconds; doubles with each further failure, at most 15 min. "
            "Answered 429 with `Retry-After`."),
    Setting("HELD_TIMEOUT_HOURS", "168", "How long an edit waits for its original before going to dead letters."),
    Setting("PARTIAL_TIMEOUT_HOURS", "24", "How long a split upload (`*isIncomplete*=yes`) waits for its last part "
            "before it and its attachments are deleted."),
    Setting("CENTRAL_CONFIG", "", "pyodk config file (TOML, `[central]` base_url, username, password, "
            "default_project_id) for the ODK Central pull. Empty: no pull."),
    Setting("CENTRAL_PROJECT_ID", "0", "ODK Central project to pull from; `0`: the config's `default_project_id`."),
    Setting("CENTRAL_FORMS", "visit_log", "Form ids to pull from ODK Central, comma-separated."),
    Setting("CENTRAL_POLL_INTERVAL_S", "60", "Seconds between two polls of ODK Central."),
    Setting("CENTRAL_ACCOUNT", "central-pull", "Intake account pulled submissions are recorded under (its provinces "
            "apply if it is in `ACCOUNTS_FILE`, else every province)."),
    Setting("PROCESSOR_BATCH_ROWS", "5000", "Processors (both modes): fold and write at most this many events at "
            "once…"),
    Setting("PROCESSOR_BATCH_MS", "200", "…and the distributed worker waits at most this many milliseconds to fill "
            "a batch."),
    Setting("EMBEDDED_READ_WAIT_S", "2", "Embedded stack: how long a query waits for the processors to reach what "
            "the intake accepted before it (201 means durable; this makes it visible to the next read)."),
    Setting("PROCESSOR_GROUP", "thuvien-processors", "Workers' consumer group (faust app id); a new one replays."),
    Setting("FAUST_SESSION_TIMEOUT_S", "30", "How soon a dead worker's partitions move to the others."),
    Setting("FAUST_WEB_PORT", "6066", "faust worker's own web port (its `/metrics` is served there)."),
    Setting("FAUST_DATA_DIR", "var/faust", "faust worker's data directory."),
    Setting("ROTATION_LOAN_DAYS", "90", "Book rotation: a batch not returned this many days after its dispatch is "
            "overdue."),
    Setting("API_KEYS_FILE", "", "Query API keys (JSON: sha256 of each key → name, scopes; "
            "`python -m services.query.access add`). Required by the query service; empty in the embedded stack: "
            "a random demo key (read:all + admin) is made at start-up and printed."),
    Setting("LOG_LEVEL", "INFO", "Python log level."),
    Setting("LOG_FORMAT", "json", "`json`: one JSON object per line (time in Asia/Ho_Chi_Minh, level, logger, message, "
            "fields such as `event_id`), for log collectors; `text`: one readable line, for a terminal."),
    Setting("OPS_API_KEY", "", "Query API key (scope `admin`) that `thuvien deadletters` sends (`X-API-Key`)."),
)


@dataclass(frozen=True)
class Settings:
    bus: str = "embedded"
    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_topic_prefix: str = ""
    kafka_replication_factor: int = 1
    kafka_publish_timeout_s: float = 15.0
    store_dsn: str = "chdb://var/store"
    state_dir: Path = field(default_factory=lambda: Path("var/state"))
    libraries_file: str = ""
    forms_src_dir: Path = field(default_factory=lambda: Path("odk-forms"))
    forms_dir: Path = field(default_factory=lambda: Path("build/forms"))
    host: str = "127.0.0.1"
    port: int = 8000
    query_port: int = 8001
    max_submission_bytes: int = 10 * 1024 * 1024
    max_attachment_bytes: int = 5 * 1024 * 1024
    accounts_file: str = ""
    digest_nonce_secret: str = ""
    trusted_proxies: str = ""
    auth_max_failures_account: int = 5
    auth_max_failures_address: int = 20
    auth_lockout_s: float = 30.0
    held_timeout_hours: float = 168.0
    partial_timeout_hours: float = 24.0
    central_config: str = ""
    central_project_id: int = 0
    central_forms: str = "visit_log"
    central_poll_interval_s: float = 60.0
    central_account: str = "central-pull"
    processor_batch_rows: int = 5000
    processor_batch_ms: int = 200
    embedded_read_wait_s: float = 2.0
    processor_group: str = "thuvien-processors"
    faust_session_timeout_s: float = 30.0
    faust_web_port: int = 6066
    faust_data_dir: Path = field(default_factory=lambda: Path("var/faust"))
    rotation_loan_days: int = 90
    api_keys_file: str = ""
    log_level: str = "INFO"
    log_format: str = "json"
    ops_api_key: str = ""

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Read every setting from the environment; keyword overrides win (tests use them)."""
        values: dict[str, object] = {}
        for f in fields(cls):
            setting = _SETTING_BY_FIELD[f.name]
            raw = _env(setting.env, setting.default)
            values[f.name] = _coerce(f.type, raw)
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.bus not in ("embedded", "kafka"):
            raise ValueError(f"BUS must be 'embedded' or 'kafka', not {settings.bus!r}")
        if settings.log_format not in ("json", "text"):
            raise ValueError(f"LOG_FORMAT must be 'json' or 'text', not {settings.log_format!r}")
        return settings


def _coerce(type_name: object, raw: str) -> object:
    name = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", "")
    if name == "int":
        return int(raw)
    if name == "float":
        return float(raw)
    if name == "Path":
        return Path(raw)
    return raw


_SETTING_BY_FIELD = {s.env.lower(): s for s in SETTINGS}
assert set(_SETTING_BY_FIELD) == {f.name for f in fields(Settings)}, "SETTINGS and Settings disagree"
