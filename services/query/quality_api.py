"""``GET /v1/data-quality``: the data-quality flags the processors keep (``services/domain/quality.py``)
for the libraries of an area whose month overlaps a period: the parameters of ``/v1/visits`` (the
same ``Series`` dependency), a rule filter, keyset pages by ``flag_id``, or every row as CSV. Each
flag names its submission chains; ``/v1/lineage/visits`` with the flag's library and month lists
them with their versions.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.domain.quality import RULES, Rule
from services.query import models
from services.query.areas import AreaResolver
from services.query.deps import AreasDep, Series, StoreDep
from services.query.formats import PageSize, PageToken, documented
from services.store.quality import FlagQuery, flags

router = APIRouter(tags=["Data quality"])

COLUMNS = ["flag_id", "library_id", "month", "rule", "reports", "message_vi", "message_en", "root_ids",
           "instance_ids"]


def _item(row: dict, areas: AreaResolver) -> dict:
    return {**{k: row[k] for k in ("flag_id", "library_id", "month", "rule", "message_vi", "message_en", "figures",
                                   "root_ids", "instance_ids", "reports")}, "areas": areas.row_codes(row)}


@router.get("/data-quality", summary="Data-quality flags of an area's libraries over a period (parameters of "
            "/v1/visits), paginated", responses=documented(models.DataQuality))
def data_quality(
    q: Series,
    store: StoreDep,
    areas: AreasDep,
    rule: Annotated[list[Rule] | None, Query(description="Only these rules (repeat the parameter for more).")] = None,
    page_size: PageSize = 100,
    page_token: PageToken = None,
) -> Response:
    """Each flag that holds now: a library-month far from the library's history (`outlier`), with reports
    but no visit (`zero_visits`), with reports accepted after its deadline (`late_report`), whose
    breakdowns do not add up (`breakdown_mismatch`), or reporting for a day the library was not
    operating (`closed_day`); its message (Vietnamese, English), the figures it saw and its chains."""
    rules = tuple(dict.fromkeys(rule)) if rule else RULES
    rows = [_item(row, areas) for row in flags(store, FlagQuery(q.filter, q.period.start, q.period.end, rules))]
    body = {"area": q.area.area, "library_type": q.area.query.library_type, "start": q.period.start.isoformat(),
            "end": q.period.end.isoformat(), "rules": list(rules)}
    return q.respond_page(body, rows, "flag_id", COLUMNS, q.filename("data-quality"), page_size, page_token)
