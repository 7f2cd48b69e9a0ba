"""Every command a deployment runs starts and explains itself; logs are JSON lines that carry a
submission's instanceID (its event_id) from the intake through the processor to the store write."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import tomllib
from datetime import date, datetime, timedelta
from importlib import import_module

import pytest
import yaml
from fastapi.testclient import TestClient

from services import logs
from services.config import REPO_ROOT, Settings
from services.domain.reference import Library
from services.tools.submissions import fill_instance, multipart
from tests.conftest import visit_answers


def _compose_commands() -> dict[str, list[str]]:
    """The commands compose runs from this repository's image (Caddy, Kafka… run their own)."""
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text("utf-8"))
    ours = compose["x-app"]["image"]
    return {name: service["command"] for name, service in compose["services"].items()
            if "command" in service and service.get("image") == ours}


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    # --help must answer without settings, a broker or a store: none is given.
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("service", sorted(_compose_commands()))
def test_every_compose_service_command_answers_help_without_starting(service: str):
    command = _compose_commands()[service]
    assert command[:2] == ["python", "-m"], f"{service}: not a python -m command: {command}"
    result = _run(*command[1:], "--help")
    assert result.returncode == 0, f"{service}: {result.stdout}{result.stderr}"
    assert result.stdout.startswith("usage: python -m " + command[2]), result.stdout[:200]
    assert len(result.stdout.splitlines()) > 3, f"{service}: --help says too little"


def test_the_compose_file_runs_the_commands_this_test_knows():
    assert set(_compose_commands()) >= {"topics", "intake", "worker", "query"}


SUBCOMMANDS = {
    "topics": "--apply", "lag": "committed", "deadletters": "redrive", "replay": "--from-date",
    "central": "pull", "doctor": "FAIL",
}


def test_thuvien_and_each_subcommand_answer_help():
    top = _run("-m", "services.ops", "--help")
    assert top.returncode == 0 and top.stdout.startswith("usage: thuvien"), top.stderr
    for command, says in SUBCOMMANDS.items():
        assert command in top.stdout
        result = _run("-m", "services.ops", command, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: thuvien {command}") and says in result.stdout, result.stdout
    for nested in (["deadletters", "list"], ["deadletters", "redrive"]):
        assert _run("-m", "services.ops", *nested, "--help").returncode == 0
    central = _run("-m", "services.ops", "central", "pull", "--help")
    assert central.returncode == 0 and "--once" in central.stdout, central.stderr


def test_thuvien_is_the_projects_script_entry_point():
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text("utf-8"))["project"]["scripts"]
    module, _, function = scripts["thuvien"].partition(":")
    assert callable(getattr(import_module(module), function))


def test_the_old_deadletters_module_still_runs():
    result = _run("-m", "services.tools.deadletters", "list", "--help")
    assert result.returncode == 0 and "--all" in result.stdout


# ------------------------------------------------------------------------------------------- logs


def test_json_lines_have_local_time_level_logger_message_and_extra_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("tests.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("tổng %d", 3, extra={"event_id": "uuid:1", "event_ids": ["a", "b"], "day": date(2026, 1, 2)})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "tổng 3" and first["level"] == "WARNING" and first["logger"] == "tests.json"
    assert first["event_id"] == "uuid:1" and first["event_ids"] == ["a", "b"] and first["day"] == "2026-01-02"
    stamp = datetime.fromisoformat(first["time"])
    assert stamp.utcoffset() == timedelta(hours=7) and first["time"].endswith("+07:00")
    assert abs((datetime.now(stamp.tzinfo) - stamp).total_seconds()) < 60
    assert "ValueError: boom" in second["exc_info"]


def test_text_format_and_an_unknown_format_is_refused():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    record.event_id = "uuid:2"
    line = logs.TextFormatter().format(record)
    assert " INFO x: hello event_id=\"uuid:2\"" in line
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        Settings.from_env(log_format="xml")
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.formatter("xml")


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_submissions_instance_id_is_in_the_intake_processor_and_store_write_log_lines(
        client: TestClient, stack, library: Library, json_logs: io.StringIO):
    xform = client.get("/forms/visit_log.xml").content
    day = date.today() - timedelta(days=3)
    accepted = "uuid:7a1b0c2d-0000-4000-8000-000000000001"
    assert client.post("/submission", files=multipart(fill_instance(xform, visit_answers(library, day),
                                                                    accepted))).status_code == 201
    refused = "uuid:7a1b0c2d-0000-4000-8000-000000000002"
    unknown = visit_answers(library, day) | {"library_id": "LIB-XX-9999"}
    assert client.post("/submission", files=multipart(fill_instance(xform, unknown, refused))).status_code == 400
    assert stack.processors.caught_up()

    lines = _lines(json_logs)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    about = [line for line in lines if line.get("event_id") == accepted or accepted in line.get("event_ids", [])]
    intake = [line for line in about if line["logger"] == "services.intake.service"]
    assert [(i["message"], i["form_id"], i["library_id"], i["kind"]) for i in intake] == [
        ("submission accepted", "visit_log", library.library_id, "new")]
    # One line per processor batch (not per event): what it folded, how, and the rows it wrote.
    written = {line["processor"]: line for line in about if line["message"] == "batch written"}
    assert set(written) == {"daily_visits", "event_archive"}, written
    assert written["daily_visits"]["logger"] == "services.processors.runner"
    assert written["daily_visits"]["outcomes"] == {"applied": 1}
    assert written["daily_visits"]["rows"]["visit_chain_rows"] == 1
    assert written["event_archive"]["rows"]["events"] == 1

    refusals = [line for line in lines if line.get("event_id") == refused]
    assert {(r["message"], r.get("reason")) for r in refusals} >= {("submission refused", "library_unknown")}
    assert all("event_ids" not in line or refused not in line["event_ids"] for line in lines)  # never written
