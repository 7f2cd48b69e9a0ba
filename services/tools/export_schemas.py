"""Write the event JSON Schemas in ``schemas/events/`` from the pydantic models.

``python -m services.tools.export_schemas``; ``tests/test_schemas.py`` fails when the
committed files and the models disagree, so run this after changing an event model.
"""

from __future__ import annotations

import json
from pathlib import Path

from services.config import REPO_ROOT
from services.domain.events import Envelope
from services.domain.forms import EVENT_MODELS

EVENTS_DIR = REPO_ROOT / "schemas" / "events"


def schema_documents() -> dict[str, str]:
    documents = {}
    for name, model in {"envelope": Envelope, **EVENT_MODELS}.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$id": f"urn:thuvien-coso:events:{name}:v1", **model.model_json_schema()}
        documents[f"{name}.schema.json"] = json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    return documents


def main(directory: Path = EVENTS_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for file_name, text in schema_documents().items():
        (directory / file_name).write_text(text, encoding="utf-8")
        print(directory / file_name)


if __name__ == "__main__":
    main()
