"""The one place configuration is read.

Every setting is an environment variable named after a field of ``Settings`` in upper case
(``state_dir`` → ``STATE_DIR``); the field declares its type, default and meaning, and
pydantic-settings reads, converts and checks it. An empty variable means the default.
Services receive a ``Settings`` object; nothing else reads ``os.environ``.

README.md's table ("Configuration") is generated from these fields:
``python -m services.tools.config_table --write``; ``tests/test_config_docs.py`` fails when
it is stale.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.domain.periods import TIMEZONE as TIMEZONE  # declared with the periods; read here by the services

REPO_ROOT = Path(__file__).resolve().parents[1]


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


class SettingsError(ValueError):
    """The environment (or an override) does not parse: one line naming each wrong variable."""


def env_var(field: str) -> str:
    """The environment variable a ``Settings`` field is read from."""
    return field.upper()


def env_text(value: object) -> str:
    """A setting's value as it is written in the environment (read back to the same value)."""
    if isinstance(value, tuple):
        return ",".join(env_text(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "15", as an operator writes it; read back as 15.0
    return str(value)


def masked_dsn(text: str) -> str:
    """A DSN (or any text holding one) without its password (``user:PASSWORD@``, ``password=``)."""
    return re.sub(r"(password=)[^&\s]*", r"\1***", re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", text))


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number in 1..65535")
    return int(text)


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list | tuple):
        return tuple(str(item).strip() for item in value if str(item).strip())
    return value  # pydantic refuses it with its own message


Port = Annotated[int, Field(ge=1, le=65535)]
# NoDecode: written comma-separated (`a,b`), not as the JSON pydantic-settings expects for a tuple.
CommaList = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_comma_list)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]  # uvicorn and faust know these too


class Settings(BaseSettings):
    """Every setting of every service; built once at start-up by ``from_env``."""

    # frozen: a service's settings cannot drift after start-up; copies are model_copy(update=…).
    # env_ignore_empty: `FOO=` (as docker compose writes an unset `${FOO}`) means the default.
    model_config = SettingsConfigDict(frozen=True, env_ignore_empty=True, extra="forbid")

    bus: Literal["embedded", "kafka"] = Field(
        "embedded", description="`embedded` (in-process, SQLite log) or `kafka`.")
    kafka_bootstrap_servers: str = Field(
        "localhost:9092", description="Kafka brokers, `host:port[,host:port]`.")
    kafka_topic_prefix: str = Field(
        "", description="Prefix for every topic name (isolates test runs and environments).")
    kafka_replication_factor: int = Field(
        1, ge=1, description="Replication factor for topics created by `services.bus.admin`.")
    kafka_publish_timeout_s: float = Field(
        15.0, gt=0, description="How long intake waits for the broker's ack before answering 503.")
    store_dsn: str = Field(
        "chdb://var/store", description="`chdb://PATH` (embedded ClickHouse) or "
        "`http(s)://[USER:PASSWORD@]HOST[:PORT][/DB]` (ClickHouse server, HTTP port 8123).")
    ledger_dsn: str = Field(
        "", description="Intake ledger shared by intake replicas (accepted submissions, held edits, split "
        "uploads, raw XML and attachments, Digest nonce counts): `postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB"
        "[?PARAM=…]`. Empty: SQLite and files in `STATE_DIR` (one intake process).")
    ledger_pool_size: int = Field(
        20, ge=1, description="Most connections one intake process opens to `LEDGER_DSN` (one per submission "
        "being accepted); replicas × this must stay under the server's `max_connections`.")
    state_dir: Path = Field(
        Path("var/state"), description="Intake ledger, raw submissions, embedded log and processor state.")
    libraries_file: str = Field(
        "", description="Library registry CSV (columns of `services/reference/libraries.csv`). Empty: the "
        "packaged sample registry of 44 fictional libraries.")
    forms_src_dir: Path = Field(Path("odk-forms"), description="XLSForm sources.")
    forms_dir: Path = Field(Path("build/forms"), description="Built XForms served to ODK Collect.")
    host: str = Field("127.0.0.1", description="Address the HTTP services listen on.")
    port: Port = Field(8000, description="Port of the embedded stack / intake service.")
    query_port: Port = Field(8001, description="Port of the query service when run on its own.")
    max_submission_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="Largest accepted submission (XML + attachments), bytes.")
    max_attachment_bytes: int = Field(
        5 * 1024 * 1024, gt=0, description="Largest accepted attachment (photo, audio…), bytes.")
    accounts_file: str = Field(
        "", description="Team accounts (JSON, HA1 + province scopes). Empty: the intake is open (demo only).")
    digest_nonce_secret: str = Field(
        "", description="Key signing Digest nonces; set the same on every intake replica.")
    trusted_proxies: CommaList = Field(
        (), description="Addresses (IPs or CIDR networks, comma-separated) of reverse proxies whose "
        "`X-Forwarded-Proto` / `X-Forwarded-For` are believed (Basic auth needs HTTPS). Empty: none, the "
        "connection itself is what counts.")
    auth_max_failures_account: int = Field(
        5, ge=1, description="Wrong passwords for one account before it is locked out (Digest, Basic).")
    auth_max_failures_address: int = Field(
        20, ge=1, description="Wrong passwords or API keys from one client address before it is locked out.")
    auth_lockout_s: float = Field(
        30.0, gt=0, description="First lock-out, seconds; doubles with each further failure, at most 15 min. "
        "Answered 429 with `Retry-After`.")
    held_timeout_hours: float = Field(
        168.0, ge=0, description="How long an edit waits for its original before going to dead letters.")
    partial_timeout_hours: float = Field(
        24.0, ge=0, description="How long a split upload (`*isIncomplete*=yes`) waits for its last part "
        "before it and its attachments are deleted.")
    registry_refresh_s: float = Field(
        60.0, gt=0, description="How often an intake reads the registry form's submissions from its ledger again "
        "(libraries registered on another replica; the served `libraries.csv`). A report naming a library it "
        "does not know makes it read at once.")
    central_config: str = Field(
        "", description="pyodk config file (TOML, `[central]` base_url, username, password, "
        "default_project_id) for the ODK Central pull. Empty: no pull.")
    central_project_id: int = Field(
        0, ge=0, description="ODK Central project to pull from; `0`: the config's `default_project_id`.")
    central_forms: CommaList = Field(("visit_log",), description="Form ids to pull from ODK Central, comma-separated.")
    central_poll_interval_s: float = Field(60.0, gt=0, description="Seconds between two polls of ODK Central.")
    central_attachment_wait_hours: float = Field(
        168.0, gt=0, description="How long the ODK Central pull re-checks, at each poll, an attachment Central "
        "listed as missing (not uploaded yet) before giving up on it; the submission is kept without it.")
    central_account: str = Field(
        "central-pull", description="Intake account pulled submissions are recorded under (its provinces "
        "apply if it is in `ACCOUNTS_FILE`, else every province).")
    processor_batch_rows: int = Field(
        5000, ge=1, description="Processors (both modes): fold and write at most this many events at once…")
    processor_batch_ms: int = Field(
        200, ge=1, description="…and the distributed worker waits at most this many milliseconds to fill a batch.")
    embedded_read_wait_s: float = Field(
        2.0, ge=0, description="Embedded stack: how long a query waits for the processors to reach what the "
        "intake accepted before it (201 means durable; this makes it visible to the next read).")
    processor_group: str = Field(
        "thuvien-processors", description="Workers' consumer group (faust app id); a new one replays.")
    faust_session_timeout_s: float = Field(
        30.0, gt=0, description="How soon a dead worker's partitions move to the others.")
    faust_web_port: Port = Field(6066, description="faust worker's own web port (its `/metrics` is served there).")
    faust_data_dir: Path = Field(Path("var/faust"), description="faust worker's data directory.")
    rotation_loan_days: int = Field(
        90, ge=1, description="Book rotation: a batch not returned this many days after its dispatch is overdue.")
    quality_z_threshold: float = Field(
        10.0, gt=0, description="Data quality: a library-month whose visits' robust z-score against the library's "
        "12 months before it exceeds this (in absolute value) is flagged as an outlier (`/v1/data-quality`).")
    api_keys_file: str = Field(
        "", description="Query API keys (JSON: sha256 of each key → name, scopes; "
        "`python -m services.query.access add`). Required by the query service; empty in the embedded stack: "
        "a random demo key (read:all, admin, approve every province) is made at start-up and printed.")
    log_level: LogLevel = Field(
        "INFO", description="Python log level: `DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL` (any case).")
    log_format: Literal["json", "text"] = Field(
        "json", description="`json`: one JSON object per line (time in Asia/Ho_Chi_Minh, level, logger, message, "
        "fields such as `event_id`), for log collectors; `text`: one readable line, for a terminal.")
    ops_api_key: str = Field(
        "", description="Query API key (scope `admin`) that `thuvien deadletters` sends (`X-API-Key`).")

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Read every setting from the environment; keyword overrides win (tests use them) and are
        checked like the environment. SettingsError names each wrong variable."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise SettingsError(_explain(exc)) from None

    def to_env(self) -> dict[str, str]:
        """These settings as the environment variables a child process reads them from."""
        return {env_var(name): env_text(value) for name, value in self}

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        # `info` has always worked; a wrong value is quoted as the operator wrote it
        return value.upper() if isinstance(value, str) and value.upper() in get_args(LogLevel) else value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        for server in (part.strip() for part in value.split(",")):
            host, colon, port = server.rpartition(":")
            if not server or (colon and not host):
                raise ValueError(f"{server!r} is not host:port")
            if colon:  # the clients default a bare host to 9092
                _port(port)
        return value

    @field_validator("store_dsn")
    @classmethod
    def _dsn(cls, value: str) -> str:
        if value.startswith("chdb://"):
            if value == "chdb://":
                raise ValueError("chdb:// needs the store's directory: chdb://PATH")
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError("is neither chdb://PATH nor http(s)://HOST[:PORT][/DB]")
        url = urlsplit(value)
        if not url.hostname:
            raise ValueError("has no host: http(s)://HOST[:PORT][/DB]")
        try:
            port = url.port  # None: none given, ClickHouse's default
        except ValueError:  # not a number, or past 65535
            port = -1
        if port is not None and not 1 <= port <= 65535:
            raise ValueError("its port is not a number in 1..65535")
        if url.path.strip("/").count("/"):
            raise ValueError("names more than one database: http(s)://HOST[:PORT][/DB]")
        return value

    @field_validator("ledger_dsn")
    @classmethod
    def _postgres_dsn(cls, value: str) -> str:
        if not value:
            return value
        url = urlsplit(value)
        if url.scheme not in ("postgresql", "postgres"):
            raise ValueError("is not postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB")
        if not url.hostname and "host=" not in url.query:
            raise ValueError("has no host: postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB")
        try:
            port = url.port
        except ValueError:  # not a number, or past 65535
            port = -1
        if port is not None and not 1 <= port <= 65535:
            raise ValueError("its port is not a number in 1..65535")
        database = url.path.strip("/")
        if not database or "/" in database:
            raise ValueError("must name one database: postgresql://HOST[:PORT]/DB")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, addresses: tuple[str, ...]) -> tuple[str, ...]:
        for address in addresses:
            # uvicorn would quietly take a malformed entry (10.0.0.1/8) as a name that never matches
            try:
                ipaddress.ip_network(address)
            except ValueError as exc:
                raise ValueError(f"{address!r} is not an IP address or CIDR network ({exc})") from None
        return addresses

    @field_validator("state_dir", "forms_src_dir", "forms_dir", "faust_data_dir")
    @classmethod
    def _a_directory(cls, path: Path) -> Path:
        if path.exists() and not path.is_dir():
            raise ValueError("is a file, not a directory")
        return path

    @field_validator("libraries_file", "accounts_file", "central_config", "api_keys_file")
    @classmethod
    def _a_file(cls, value: str) -> str:
        if value and Path(value).is_dir():
            raise ValueError("is a directory, not a file")
        return value


def load_settings(**overrides: Any) -> Settings:
    """``Settings.from_env`` where a service starts: a wrong setting ends the process with one line
    naming the variable (exit status 1), not a traceback."""
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise SystemExit(f"error: {exc} (README, Configuration)") from None


def _explain(error: ValidationError) -> str:
    """pydantic's errors as one line: ``PORT='x': input should be a valid integer, …; BUS=…``."""
    problems = []
    for item in error.errors(include_url=False):
        name = env_var(str(item["loc"][0])) if item["loc"] else "settings"
        if item["type"] == "extra_forbidden":
            problems.append(f"{name} is not a setting")
            continue
        message = item["msg"].removeprefix("Value error, ")
        shown = masked_dsn(item["input"]) if isinstance(item["input"], str) else item["input"]
        problems.append(f"{name}={shown!r}: {message[:1].lower()}{message[1:]}")
    return "; ".join(problems)
