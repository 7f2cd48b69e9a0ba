"""What the query API's routes depend on, as ``Annotated`` aliases (the pattern of
fastapi/full-stack-fastapi-template's ``api/deps.py``), so that a route's signature says in a few
words what it needs and the routers can be module-level:

- ``Services``, ``StoreDep``, ``ReferenceDep``, ``AggregatesDep``, ``AreasDep``, ``LoanDays``: what each app has of its
  own (``QueryServices``, put on ``app.state`` by the app factory, ``services/bootstrap.py``);
- ``CurrentKey``, ``Reader``, ``Admin``: the API key's principal, with the scope each route needs;
- ``PlaceRequest``, ``AreaRequest``, ``RegistryRequest``, ``ProvinceRequest``: the key, the area
  parameters resolved once (checked against the reference and the key) and the format;
  ``Series``: the same and a period.
"""

# No `from __future__ import annotations` here: FastAPI must resolve the annotations of the
# dependencies `_asked` builds (`Depends(params)`, a local name) when the routes are built.
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request, Response, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from services.bus.base import Publisher
from services.domain.errors import Reason
from services.domain.periods import Period
from services.domain.reference import Reference
from services.login_throttle import LoginThrottle
from services.problems import RequestRefused
from services.query.access import ApiKeys, Principal, province_mapping
from services.query.areas import AreaResolver, ResolvedArea
from services.query.formats import Format, FormatParam, respond, respond_page
from services.query.params import AreaQuery, area_query, period_query, place_query, province_query
from services.store.aggregates import Aggregates
from services.store.approvals import ApprovalReader
from services.store.clickhouse import AreaFilter, Store

STATE = "query"  # the name of the app's QueryServices on app.state


@dataclass(frozen=True)
class QueryServices:
    """What one app's query routes read: its store and reference, the keys that may ask, and the loan
    period of rotation."""

    store: Store
    reference: Reference
    aggregates: Aggregates
    areas: AreaResolver
    keys: ApiKeys
    throttle: LoginThrottle  # wrong keys braked, per address
    loan_days: int
    approvals: ApprovalReader
    # Where approvals and decisions are published (the bus); None: this service takes none (503).
    publisher: Publisher | None = None
    central_dir: Path | None = None  # where the ODK Central pull keeps its state (services/intake/central_state.py)
    central_interval_s: float = 60.0  # its poll interval, against which its lag is judged
    forms_dir: Path = Path("build/forms")  # built XForms: the reports' choice labels (query/report_xlsx.py)

    @classmethod
    def over(cls, store: Store, reference: Reference, keys: ApiKeys, throttle: LoginThrottle, *,
             rotation_loan_days: int = 90, publisher: Publisher | None = None, central_dir: Path | None = None,
             central_interval_s: float = 60.0, forms_dir: Path = Path("build/forms")) -> "QueryServices":
        aggregates = Aggregates(store, reference)
        return cls(store, reference, aggregates, AreaResolver(reference, aggregates), keys, throttle,
                   rotation_loan_days, ApprovalReader(store, province_mapping()), publisher, central_dir,
                   central_interval_s, forms_dir)

    def state(self) -> dict[str, Any]:
        """What the app factory puts on ``app.state`` (``services/web.py`` ``create_app(state=…)``)."""
        return {STATE: self}


def _services(request: Request) -> QueryServices:
    return getattr(request.app.state, STATE)


Services = Annotated[QueryServices, Depends(_services)]


def _store(services: Services) -> Store:
    return services.store


def _aggregates(services: Services) -> Aggregates:
    return services.aggregates


def _areas(services: Services) -> AreaResolver:
    return services.areas


def _loan_days(services: Services) -> int:
    return services.loan_days


def _reference(services: Services) -> Reference:
    return services.reference


def _approvals(services: Services) -> ApprovalReader:
    return services.approvals


StoreDep = Annotated[Store, Depends(_store)]
AggregatesDep = Annotated[Aggregates, Depends(_aggregates)]
AreasDep = Annotated[AreaResolver, Depends(_areas)]
LoanDays = Annotated[int, Depends(_loan_days)]
ReferenceDep = Annotated[Reference, Depends(_reference)]
ApprovalsDep = Annotated[ApprovalReader, Depends(_approvals)]


# --- the API key ------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, scheme_name="bearerKey",
                     description="`Authorization: Bearer <key>` (a key made by `python -m services.query.access`).")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKeyHeader",
                       description="The same key in an `X-API-Key` header.")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="thuvien-coso"'}


def _authenticated(request: Request, services: Services,
                   bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
                   api_key: Annotated[str | None, Security(_header)] = None) -> Principal:
    key = api_key or (bearer.credentials if bearer else None)
    if not key:
        raise RequestRefused(401, "API key required", Reason(
            "api_key_required", "Hãy gửi Authorization: Bearer <khoá> hoặc X-API-Key: <khoá>.",
            "Send Authorization: Bearer <key> or X-API-Key: <key>.", "Authorization"), headers=_CHALLENGE)
    address = request.client.host if request.client else "unknown"
    if wait := services.throttle.retry_after(address):
        raise RequestRefused(429, "Too many wrong API keys", Reason(
            "too_many_wrong_keys", f"Địa chỉ này đã gửi sai khoá API quá nhiều lần; hãy thử lại sau {wait} giây.",
            f"Too many wrong API keys from this address; try again in {wait} seconds.", "Authorization"),
            retry_after=wait)
    found = services.keys.lookup(key.strip())
    if found is None:
        services.throttle.failed("query", "api_key", address)
        raise RequestRefused(401, "Unknown API key", Reason(
            "unknown_api_key", "Khoá API không hợp lệ (đã thu hồi, hoặc gõ sai).",
            "The API key is not valid (revoked, or mistyped).", "Authorization"), headers=_CHALLENGE)
    return found


CurrentKey = Annotated[Principal, Depends(_authenticated)]


def _reader(principal: CurrentKey) -> Principal:
    if not principal.reads:
        raise RequestRefused(403, "Not allowed", Reason(
            "no_read_scope", f"Khoá {principal.name!r} không có quyền đọc (read:all hoặc "
            "read:province:<scheme>:<code>).", f"Key {principal.name!r} has no read scope (read:all or "
            "read:province:<scheme>:<code>).", "Authorization"))
    return principal


def _administrator(principal: CurrentKey) -> Principal:
    if not principal.admin:
        raise RequestRefused(403, "Not allowed", Reason(
            "no_admin_scope", f"Khoá {principal.name!r} không có quyền admin.",
            f"Key {principal.name!r} lacks the admin scope.", "Authorization"))
    return principal


Reader = Annotated[Principal, Depends(_reader)]
Admin = Annotated[Principal, Depends(_administrator)]


# --- the area asked about, and the answer's format ---------------------------------------------------

@dataclass(frozen=True)
class AreaAsked:
    """A question about an area: who asks, the area (checked: it exists, its parts agree, the key
    reaches it) and the format of the answer."""

    request: Request
    principal: Principal
    area: ResolvedArea
    format: Format | None

    def filename(self, name: str) -> str:
        """A CSV's name: ``name`` and the area's parameters (``visits-legacy-02``)."""
        q = self.area.query
        parts = [name, q.scheme, q.province or "", q.commune or "", q.library or "", q.library_type or ""]
        return "-".join(p for p in parts if p)

    def respond(self, body: Any, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], filename: str,
                **headers: str) -> Response:
        return respond(self.request, body, rows, columns, self.format, filename, headers=headers)

    def respond_page(self, body: dict[str, Any], rows: Sequence[Mapping[str, Any]], key: str, columns: Sequence[str],
                     filename: str, page_size: int, page_token: str | None) -> Response:
        return respond_page(self.request, body, rows, key, columns, self.format, filename, page_size, page_token)


def _asked(params: Callable[..., AreaQuery], *, region_ok: bool = False) -> Callable[..., AreaAsked]:
    """The dependency reading the area through ``params`` (which parameters it takes) and resolving it
    (``region_ok``: the whole region is asked for by a province-scoped key too, for a filtered list)."""
    def asked(request: Request, principal: Reader, query: Annotated[AreaQuery, Depends(params)], areas: AreasDep,
              format: FormatParam = None) -> AreaAsked:
        return AreaAsked(request, principal, areas.resolve(principal, query, region_ok=region_ok), format)
    return asked


PlaceRequest = Annotated[AreaAsked, Depends(_asked(place_query))]  # no library type
AreaRequest = Annotated[AreaAsked, Depends(_asked(area_query))]
RegistryRequest = Annotated[AreaAsked, Depends(_asked(area_query, region_ok=True))]
ProvinceRequest = Annotated[AreaAsked, Depends(_asked(province_query))]


@dataclass(frozen=True)
class SeriesQuery(AreaAsked):
    """An area over a period; ``filter`` is the area's, narrowed to its libraries of the type asked
    (the registry at the period's end)."""

    period: Period
    filter: AreaFilter

    def series(self, name: str, rows: list[dict[str, Any]], columns: Sequence[str], **extra: Any) -> Response:
        """The rows as the series of the area and period (``series_body``), JSON or CSV."""
        return self.respond(series_body(self.area, self.period, rows, **extra), rows, columns, self.filename(name))


def _series(asked: AreaRequest, period: Annotated[Period, Depends(period_query)],
            aggregates: AggregatesDep) -> SeriesQuery:
    where = aggregates.of_type(asked.area.filter, asked.area.query.library_type, period.end)
    return SeriesQuery(asked.request, asked.principal, asked.area, asked.format, period, where)


Series = Annotated[SeriesQuery, Depends(_series)]


def series_body(area: ResolvedArea, period: Period, rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A series' answer (``/v1/visits``… and ``/v1/dashboard``'s visits)."""
    return {"area": area.area, "library_type": area.query.library_type, "granularity": period.granularity,
            "start": period.start.isoformat(), "end": period.end.isoformat(), **extra, "series": rows}
