"""Committed schemas agree with the code: event JSON Schemas, and ClickHouse migrations."""

from __future__ import annotations

import json
from datetime import date, datetime

import jsonschema
import pytest

from services.config import REPO_ROOT, TIMEZONE
from services.domain.forms.visit_log import VisitCounts, VisitLogged
from services.domain.reference import default_reference
from services.store.clickhouse import Store
from services.store.migrations import load_migrations
from services.tools.export_schemas import EVENTS_DIR, schema_documents


def test_committed_event_schemas_match_the_models():
    for file_name, generated in schema_documents().items():
        committed = (EVENTS_DIR / file_name).read_text("utf-8")
        assert committed == generated, f"{file_name} is stale: run `make schemas`"


def _event() -> VisitLogged:
    library = next(iter(default_reference().libraries.values()))
    counts = dict.fromkeys(VisitCounts.model_fields, 0) | {"visits_total": 0}
    return VisitLogged(
        event_id="uuid:1", root_id="uuid:1", form_id="visit_log", form_version="2026112501",
        submitted_at=datetime(2026, 11, 25, 9, 30, tzinfo=TIMEZONE), occurred_on=date(2026, 11, 24),
        library_id=library.library_id, areas=list(library.areas), submitter="team-hg", source="openrosa",
        content_hash="0" * 64, payload=VisitCounts(**counts))


def test_a_real_event_validates_against_the_committed_schema():
    schema = json.loads((EVENTS_DIR / "visit_logged.schema.json").read_text("utf-8"))
    jsonschema.validate(json.loads(_event().model_dump_json()), schema)


def test_the_committed_schema_refuses_a_bare_admin_code():
    schema = json.loads((EVENTS_DIR / "visit_logged.schema.json").read_text("utf-8"))
    document = json.loads(_event().model_dump_json())
    del document["areas"][0]["scheme"]
    with pytest.raises(jsonschema.ValidationError, match="scheme"):
        jsonschema.validate(document, schema)


def test_migrations_are_numbered_and_apply_idempotently(tmp_path):
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all((REPO_ROOT / "schemas" / "clickhouse").glob("*.sql"))
    store = Store(f"chdb://{tmp_path / 'store'}")
    try:
        assert store.migrate() == [m.version for m in migrations]
        assert store.migrate() == []  # a restart applies nothing
        assert {"schema_migrations", "visits_library_daily", "dead_letters"} <= set(store.tables())
    finally:
        store.close()
