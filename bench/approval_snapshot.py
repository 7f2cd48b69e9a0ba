"""How large an approval's message is (``python -m bench.approval_snapshot``): the snapshot of chain
rows it carries, as plain JSON rows and as packed on the wire (``services/domain/chain_rows.py``),
for the samples' largest province-quarter and for a realistic large one (300 libraries' daily
logs over a quarter: 27,300 chains with random ids). Kafka's default message limit is 1,000,000 B.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from datetime import date, datetime, timedelta

from bench.generate import visit_counts
from services.bus.codec import encode
from services.config import TIMEZONE
from services.domain.approvals import VALUES, ApprovalAction, ChainRow
from services.domain.reference import default_reference
from services.tools.samples import sample_reports

LIMIT = 1_000_000


def _action(rows: list[ChainRow], province: str, period: str) -> ApprovalAction:
    return ApprovalAction(action_id=str(uuid.uuid4()), action="approve", approval_id=str(uuid.uuid4()),
                          scheme="2025", province=province, period=period, by="so-vh-tuyen-quang",
                          at=datetime(2026, 4, 2, 9, 0, tzinfo=TIMEZONE), rows=rows)


def _quarter(day: date) -> str:
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def sample_rows() -> tuple[str, str, list[ChainRow]]:
    """The chain rows of the samples' largest (2025 province, quarter)."""
    reference = default_reference()
    rows: dict[tuple[str, str], list[ChainRow]] = {}
    for report in sample_reports(reference, date(2026, 3, 31)):
        library = reference.libraries[report.answers["library_id"]]
        day = date.fromisoformat(report.answers["report_date"])
        legacy, current = library.area("legacy"), library.area("2025")
        counts = {name: int(report.answers.get(name, 1 if name == "reports" else 0)) for name in VALUES}
        rows.setdefault((current.province_code, _quarter(day)), []).append(ChainRow(
            root_id=report.instance_id, event_id=report.instance_id, day=day, library_id=library.library_id,
            province_legacy=legacy.province_code, commune_legacy=legacy.commune_code,
            province_2025=current.province_code, commune_2025=current.commune_code, counts=counts))
    (province, period), largest = max(rows.items(), key=lambda item: len(item[1]))
    return province, period, largest


def large_rows(libraries: int = 300, first: date = date(2026, 1, 1), days: int = 91,
               seed: int = 2026) -> list[ChainRow]:
    """Daily visit logs of ``libraries`` libraries of one province over ``days`` days (random uuid4
    ids, the realistic worst case for compression; one chain in ten edited, so its version differs)."""
    rng = random.Random(seed)
    rows = []
    for n in range(libraries):
        commune_legacy, commune_2025 = f"{n // 3:05d}", f"{n // 6:05d}"
        for d in range(days):
            root = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            version = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}" if rng.random() < 0.1 else root
            counts = {**visit_counts(rng.randrange(5, 120), rng), "reports": 1}
            rows.append(ChainRow(root_id=root, event_id=version, day=first + timedelta(days=d),
                                 library_id=f"LIB-08-{n:04d}", province_legacy="02" if n % 2 else "08",
                                 commune_legacy=commune_legacy, province_2025="08", commune_2025=commune_2025,
                                 counts=counts))
    return rows


def measure(rows: list[ChainRow], province: str, period: str) -> dict[str, int]:
    plain = len(json.dumps([row.model_dump(mode="json") for row in rows], ensure_ascii=False).encode())
    wire = len(encode(_action(rows, province, period)))
    return {"chains": len(rows), "plain_json_bytes": plain, "message_bytes": wire,
            "bytes_per_chain": round(wire / max(1, len(rows)))}


def main() -> None:
    province, period, rows = sample_rows()
    months = Counter(row.month for row in rows)
    print(f"samples, largest province-quarter (2025 {province}, {period}, {len(months)} months):",
          measure(rows, province, period))
    print("300 libraries x 91 days of daily logs (one province-quarter):", measure(large_rows(), "08", "2026-Q1"))
    print(f"Kafka's default message limit: {LIMIT:,} B")


if __name__ == "__main__":
    main()
