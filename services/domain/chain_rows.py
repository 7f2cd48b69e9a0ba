"""A report chain's contribution to the figures (``ChainRow``): a visit log's to the visits figures,
an activity form's (mobile session, reading promotion, training, donation) to its own; and the
compact form in which an approval carries thousands of them (``pack_rows`` / ``unpack_rows``).

Why compact: an approval carries every chain counted in its province and months ("what the figures
were"), and the action is one message on the ``approvals`` topic. As plain JSON a chain row is
about 370 bytes, so a province-quarter of 300 libraries' daily logs (27,000 chains) would be a
10 MB message, ten times Kafka's default limit. Packed, the rows are columns (each library with its
areas written once, days as offsets, counts as bare numbers, a version equal to its chain's id left
out), deflated and base64-encoded: about 40 bytes a chain, what is left being mostly the chains' own
random ids. The topic still allows larger messages (``services/bus/topics.py``) so that no province
is ever too large to approve (``schemas/AGGREGATES.md``, "Approval")."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Iterable
from datetime import date, timedelta

from pydantic import BaseModel, ConfigDict

from services.domain.activity_chains import ACTIVITY_CHAINS, DIMENSIONS, MEASURES
from services.domain.events import Scheme
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.forms.visit_log import EVENT_TYPE as VISIT_LOGGED

VALUES: tuple[str, ...] = (*COUNT_FIELDS, "reports")  # what a chain contributes to a visits figure
ACTIVITY_VALUES: tuple[str, ...] = (*MEASURES, "reports")  # … and an activity form's chain to its figures
# The forms a row can be of: the visit logs and the activity forms (the reports of a period).
EVENT_TYPES: tuple[str, ...] = (VISIT_LOGGED, *ACTIVITY_CHAINS.event_types)
PACKED = "z1:"  # the packed form's mark and version
# Bound on what a packed snapshot may inflate to (a deflate bomb stops here): ~200 bytes a chain
# unpacked, so about a million chains, far above any province's.
MAX_UNPACKED = 256 * 1024 * 1024
_PLACE = ("library_id", "province_legacy", "commune_legacy", "province_2025", "commune_2025")


class ChainRow(BaseModel):
    """One report chain's contribution as it was read (a chain row of the store): its form
    (``event_type``), version, day, library, areas under both schemes, what its form's figures group
    by (``labels``: an activity's ``DIMENSIONS``; none for a visit log) and its counts (``VALUES`` or
    ``ACTIVITY_VALUES``; ``reports`` is 1)."""

    model_config = ConfigDict(frozen=True)
    root_id: str
    event_id: str
    event_type: str = VISIT_LOGGED
    day: date
    library_id: str
    province_legacy: str
    commune_legacy: str
    province_2025: str
    commune_2025: str
    labels: dict[str, str] = {}
    counts: dict[str, int | float]

    @property
    def month(self) -> date:
        return self.day.replace(day=1)

    @property
    def is_visit_log(self) -> bool:
        return self.event_type == VISIT_LOGGED

    @property
    def values(self) -> tuple[str, ...]:
        """The counts a row of its form has."""
        return VALUES if self.is_visit_log else ACTIVITY_VALUES

    def province(self, scheme: Scheme) -> str:
        return self.province_legacy if scheme == "legacy" else self.province_2025


def pack_rows(rows: Iterable[ChainRow]) -> str:
    """``rows`` as one ASCII string (``PACKED`` + base64 of deflated columnar JSON)."""
    rows = list(rows)
    first = min((row.day for row in rows), default=date(2000, 1, 1))
    places: dict[tuple[str, ...], int] = {}
    types: dict[str, int] = {}
    names = sorted({name for row in rows for name in row.counts} | set(VALUES))
    columns: dict[str, object] = {
        "first": first.isoformat(), "values": names,
        "roots": [row.root_id for row in rows],
        "versions": [("" if row.event_id == row.root_id else row.event_id) for row in rows],
        "days": [(row.day - first).days for row in rows],
        "places": [places.setdefault(tuple(getattr(row, f) for f in _PLACE), len(places)) for row in rows],
        # each row's counts over ``names``; None where its form has no such count
        "counts": [[row.counts.get(name) for name in names] for row in rows],
    }
    columns["place_table"] = [list(place) for place in places]
    if any(not row.is_visit_log for row in rows):  # visit logs alone: the first version's columns
        columns["types"] = [types.setdefault(row.event_type, len(types)) for row in rows]
        columns["type_table"] = list(types)
        columns["labels"] = [[row.labels.get(name, "") for name in DIMENSIONS] if row.labels else None
                             for row in rows]
    text = json.dumps(columns, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return PACKED + base64.b64encode(zlib.compress(text, 9)).decode("ascii")


def unpack_rows(packed: str) -> list[ChainRow]:
    """The rows of ``pack_rows``'s string; ValueError if it is not one (or would inflate too far)."""
    if not packed.startswith(PACKED):
        raise ValueError("not a packed snapshot of chain rows")
    try:
        inflater = zlib.decompressobj()
        text = inflater.decompress(base64.b64decode(packed[len(PACKED):], validate=True), MAX_UNPACKED)
        if inflater.unconsumed_tail:
            raise ValueError(f"a packed snapshot inflates beyond {MAX_UNPACKED} bytes")
        columns = json.loads(text)
        first = date.fromisoformat(columns["first"])
        names, table = columns["values"], columns["place_table"]
        count = len(columns["roots"])
        type_table = columns.get("type_table", [VISIT_LOGGED])
        types = columns.get("types", [0] * count)
        labels = columns.get("labels", [None] * count)
        lengths = {len(columns[c]) for c in ("roots", "versions", "days", "places", "counts")} | {
            len(types), len(labels)}
        if len(lengths) != 1:
            raise ValueError("a packed snapshot's columns differ in length")
        if unknown := set(type_table) - set(EVENT_TYPES):
            raise ValueError(f"a packed snapshot names forms that are not reports of a period: {sorted(unknown)}")
        return [ChainRow(root_id=root, event_id=version or root, event_type=type_table[kind],
                         day=first + timedelta(days=day), **dict(zip(_PLACE, table[place], strict=True)),
                         labels=dict(zip(DIMENSIONS, label, strict=True)) if label is not None else {},
                         counts={name: value for name, value in zip(names, counts, strict=True) if value is not None})
                for root, version, day, place, counts, kind, label in zip(
                    columns["roots"], columns["versions"], columns["days"], columns["places"], columns["counts"],
                    types, labels, strict=True)]
    except (binascii.Error, zlib.error, json.JSONDecodeError, KeyError, TypeError, IndexError, OverflowError) as exc:
        raise ValueError(f"not a packed snapshot of chain rows: {exc}") from exc
