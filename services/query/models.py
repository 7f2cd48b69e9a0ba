"""Shapes of the query API's JSON answers, for the OpenAPI document (``/openapi.json``).

The routes build their answers as plain dicts (then JSON or CSV, ``formats.py``); these models
only describe them, and ``tests/test_query_v1.py`` checks real answers against the published
document.
"""

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.dataclasses import dataclass as pydantic_dataclass

from services.domain.events import Scheme
from services.domain.forms.visit_log import COUNT_FIELDS
from services.domain.periods import Granularity
from services.intake.central_state import PullState


class Unit(BaseModel):
    """A province or commune under one scheme, named in Vietnamese and English."""

    scheme: Scheme
    level: Literal["province", "commune"] | None = None
    code: str | None
    name_vi: str | None
    name_en: str | None


class Area(BaseModel):
    """The area an answer is about: the region of a scheme, a province, a commune or a library."""

    scheme: Scheme
    level: Literal["region", "province", "commune", "library"]
    code: str | None = Field(description="Province or commune code under `scheme`, library id, or null (region).")
    name_vi: str | None
    name_en: str | None
    province_code: str | None = Field(default=None, description="Communes: their province's code.")
    library_type: str | None = Field(default=None, description="Libraries: their type.")
    province: Unit | None = Field(default=None, description="Communes and libraries: their province.")
    commune: Unit | None = Field(default=None, description="Libraries: their commune.")


class SchemeCodes(BaseModel):
    province_code: str | None
    province_name_vi: str | None
    province_name_en: str | None
    commune_code: str | None
    commune_name_vi: str | None
    commune_name_en: str | None


class Codes(BaseModel):
    """A place under both schemes, each tagged by its key."""

    model_config = ConfigDict(populate_by_name=True)
    legacy: SchemeCodes
    current: SchemeCodes = Field(alias="2025")


class Indicator(BaseModel):
    value: float | None = Field(description="A fraction (K4: a growth rate); null when the denominator is 0.")
    numerator: float
    denominator: float
    target: float | None = Field(description="Target for the year (services/reference/targets.csv).")
    on_track: bool | None
    status: Literal["approved", "provisional"] = Field(
        description="`approved`: K4 when every month of the year and the year before is approved for the whole "
                    "area, served from the approved visit figures; K1–K3, completeness and timeliness are always "
                    "`provisional` (no period's approval holds what they count: schemas/AGGREGATES.md, \"Approval\").")


class Indicators(BaseModel):
    area: Area
    year: int
    as_of: date
    indicators: dict[Literal["K1", "K2", "K3", "K4", "completeness", "timeliness"], Indicator]


class _Series(BaseModel):
    area: Area
    library_type: str | None
    granularity: Granularity
    start: date
    end: date


VisitRow = create_model("VisitRow", period=(str, ...), reports=(int, ...),
                        **{name: (int, ...) for name in COUNT_FIELDS})  # type: ignore[call-overload]
VisitCounts = create_model("VisitCounts", reports=(int, ...),
                           **{name: (int, ...) for name in COUNT_FIELDS})  # type: ignore[call-overload]


FigureStatus = Annotated[Literal["approved", "provisional"], Field(
    description="`approved`: every month of the point is approved for the whole area, and the value is the approved "
                "one (schemas/AGGREGATES.md, \"Approval\"); else `provisional` (live).")]


class MobileRow(BaseModel):
    period: str
    sessions: int
    visits_total: int
    visits_children: int
    visits_adults: int
    loans: int
    status: FigureStatus


class ReadingRow(BaseModel):
    period: str
    occasion: str
    events: int
    participants_total: int
    participants_children: int
    participants_adults: int
    co_organised: int
    status: FigureStatus


class TrainingRow(BaseModel):
    period: str
    records: int
    hours: float
    workers: int
    workers_passed: int
    status: FigureStatus


class DonationRow(BaseModel):
    period: str
    donor_kind: str
    donor_origin: str
    donations: int
    books: int
    money_vnd: int
    status: FigureStatus


class VisitPoint(VisitRow):  # type: ignore[valid-type, misc]
    status: FigureStatus


class ApprovalBrief(BaseModel):
    approval_id: str
    scheme: Scheme
    province: str
    period: str = Field(description="`2026-03` or `2026-Q1`.")
    approved_by: str = Field(description="The approving key's name.")
    approved_at: datetime
    region_accepted_by: str | None = Field(description="Who accepted it at the region level, if anyone.")


class Visits(_Series):
    series: list[VisitPoint]
    approvals: list[ApprovalBrief] = Field(description="The approvals making the approved points.")


class ApprovalActionTaken(BaseModel):
    """An action published on the bus (202): it shows in the approvals once folded."""

    action_id: str
    approval_id: str
    action: Literal["approve", "unapprove", "apply", "decline", "accept"]
    scheme: Scheme
    province: str
    period: str
    by: str
    at: datetime


class ApprovalSummary(BaseModel):
    approval_id: str
    scheme: Scheme
    province: str
    period: str
    months: list[str]
    forms: list[str] = Field(description="The forms whose reports it holds (an approval made before the activity "
                                         "forms were held: `visit_log` only).")
    status: Literal["active", "unapproved"]
    approved_by: str
    approved_at: datetime
    figures: dict[str, VisitCounts] = Field(description="Month → the visit figures as approved.")
    unapproved_by: str | None
    unapproved_at: datetime | None
    region_accepted_by: str | None
    region_accepted_at: datetime | None
    history: list[dict[str, Any]] = Field(description="Every action on it, in log order: who, when, what "
                                                      "(an approval: the figures; a decision: its delta).")


class ApprovalList(BaseModel):
    approvals: list[ApprovalSummary]


class HeldChange(BaseModel):
    item_id: str
    approval_id: str
    root_id: str = Field(description="The report chain (instanceID of its first version).")
    change: Literal["new", "edited", "withdrawn"]
    form: str = Field(description="The report's form (`visit_log`, `mobile_session`, `reading_promotion`, "
                                  "`staff_training`, `donation`).")
    before: dict[str, Any] | None = Field(description="Its approved contribution (none: not in the approved figure).")
    after: dict[str, Any] | None = Field(description="Its live contribution (none: it no longer counts here).")
    delta: dict[str, int | float] = Field(
        description="What applying it changes in its form's approved figures (after − before), count by count: a "
                    "visit log's visit counts and `reports`; an activity's measures and `reports`.")


class HeldChanges(BaseModel):
    approval: ApprovalBrief
    items: list[HeldChange]


class MobileSessions(_Series):
    series: list[MobileRow]
    approvals: list[ApprovalBrief] = Field(description="The approvals making the approved points.")


class ReadingPromotion(_Series):
    occasion: str | None
    series: list[ReadingRow]
    approvals: list[ApprovalBrief] = Field(description="The approvals making the approved points.")


class Training(_Series):
    series: list[TrainingRow]
    approvals: list[ApprovalBrief] = Field(description="The approvals making the approved points.")


class Donations(_Series):
    donor_kind: str | None
    donor_origin: str | None
    series: list[DonationRow]
    approvals: list[ApprovalBrief] = Field(description="The approvals making the approved points.")


class GrowthAll(BaseModel):
    visits: int
    previous: int
    yoy: float | None


class GrowthLikeForLike(GrowthAll):
    libraries: int


class Cagr(BaseModel):
    baseline_year: int | None
    value: float | None
    status: Literal["approved", "provisional"] = Field(
        description="`approved` when every month from the baseline year's first to the year's last (or today) is "
                    "approved for the whole area.")


class Growth(BaseModel):
    area: Area
    library_type: str | None
    year: int
    all: GrowthAll
    like_for_like: GrowthLikeForLike
    cagr: Cagr
    status: Literal["approved", "provisional"] = Field(
        description="`approved` when every month of the year (to today) and the year before is approved for the "
                    "whole area; approved months count as approved either way (schemas/AGGREGATES.md, \"Approval\").")
    approvals: list[ApprovalBrief] = Field(description="The approvals of the area's approved months.")


class _Page(BaseModel):
    next_page_token: str | None = Field(description="Pass as `page_token` for the next page; null on the last.")


class Edit(BaseModel):
    instance_id: str = Field(description="The version's ODK instanceID.")
    accepted_at: datetime = Field(description="When it was accepted (Asia/Ho_Chi_Minh).")


class Retraction(Edit):
    reason_code: str
    reason: str


class LineageChain(BaseModel):
    """A submission chain making the figure: its current version counts once."""

    root_id: str = Field(description="instanceID of the chain's first version.")
    instance_id: str = Field(description="instanceID of its current version.")
    period: str = Field(description="The period of the figure it counts in (a growth figure: its year).")
    library_id: str
    occurred_on: date = Field(description="Event time: the day of the report.")
    submitter: str | None = Field(description="The account that sent the current version.")
    source: str | None = Field(description="How it came: the intake, or pulled from ODK Central.")
    first_accepted_at: datetime | None = Field(description="When its first version was accepted (Asia/Ho_Chi_Minh).")
    last_accepted_at: datetime = Field(description="When its current version was accepted (Asia/Ho_Chi_Minh).")
    versions: int
    edits: list[Edit] = Field(description="Every version after the first.")
    retractions: list[Retraction] = Field(description="Retractions it had (a chain counted now was reinstated).")
    contribution: VisitRow = Field(description="What it adds to the figure of its period "  # type: ignore[valid-type]
                                               "(`reports`: 1).")


class _Lineage(_Page):
    area: Area
    library_type: str | None
    chains: int = Field(description="How many chains make the figure (every page).")
    items: list[LineageChain]


class VisitsLineage(_Lineage):
    granularity: Granularity
    start: date
    end: date
    series: list[VisitRow] = Field(description="The figure, as `/v1/visits` serves it.")  # type: ignore[valid-type]


class GrowthLineage(_Lineage):
    year: int
    all: GrowthAll = Field(description="The figure, as `/v1/growth` serves it: chains of `year` make `visits`, "
                                       "those of the year before `previous`.")
    status: Literal["approved", "provisional"] = Field(description="As `/v1/growth` marks it.")


class RegistryChain(BaseModel):
    root_id: str
    instance_id: str
    action: str
    occurred_on: date
    submitter: str | None
    first_accepted_at: datetime
    last_accepted_at: datetime


class CoveringLibrary(BaseModel):
    library_id: str
    library_type: str
    opened_on: date | None
    model_joined_on: date | None
    chains: list[RegistryChain] = Field(description="The registry form's chains that made the library what it "
                                                    "was on the day; none: as the reference data has it.")


class CoveredCommune(BaseModel):
    commune_code: str
    contribution: int = Field(description="1: a commune counts once in K1's numerator.")
    libraries: list[CoveringLibrary]


class K1Lineage(_Page):
    area: Area
    year: int
    as_of: date
    indicator: Indicator = Field(description="K1 as `/v1/indicators` serves it.")
    items: list[CoveredCommune]


class Holder(BaseModel):
    library_id: str
    name_vi: str | None
    name_en: str | None


class OriginProvince(BaseModel):
    scheme: Literal["2025"]
    code: str | None
    name_vi: str | None
    name_en: str | None


class Batch(BaseModel):
    batch_id: str
    status: Literal["dispatched", "received", "returned"]
    in_transit: bool
    overdue: bool
    origin: str
    origin_province: OriginProvince
    origin_library_id: str | None
    holder: Holder
    areas: Codes
    dispatched_on: date | None
    received_on: date | None
    returned_on: date | None
    titles: int
    copies: int
    ethnic_language_copies: int
    copies_lost: int
    copies_damaged: int
    days_held: int | None


class Batches(_Page):
    area: Area
    library_type: str | None
    as_of: date
    loan_days: int
    items: list[Batch]


class OnHand(BaseModel):
    library_id: str
    name_vi: str | None
    name_en: str | None
    areas: Codes
    batches_on_hand: int
    copies_on_hand: int
    ethnic_language_copies_on_hand: int
    days_held: int | None
    longest_held_days: int | None


class OnHandList(_Page):
    area: Area
    library_type: str | None
    as_of: date
    items: list[OnHand]


class ProvinceRotation(BaseModel):
    scheme: Scheme
    province_code: str
    name_vi: str | None
    name_en: str | None
    batches_dispatched: int
    copies_dispatched: int
    batches_in_circulation: int
    copies_in_circulation: int
    batches_overdue: int
    copies_lost: int
    copies_damaged: int
    loss_rate: float | None


class ProvinceRotations(BaseModel):
    area: Area
    as_of: date
    loan_days: int
    items: list[ProvinceRotation]


class DashboardRotation(ProvinceRotation):
    batches_in_transit: int = Field(description="Batches dispatched, not yet received (`in_transit`).")
    batches_on_hand: int = Field(description="Batches received, not yet returned.")


class DashboardRotations(BaseModel):
    as_of: date
    loan_days: int
    items: list[DashboardRotation]


class CommuneCoverage(BaseModel):
    province_code: str
    communes: int = Field(description="Communes of the province the key reaches (as `/v1/areas` lists them).")
    with_model: int = Field(description="Of those, communes where a library of the registry is in the model.")


class CommuneCoverages(BaseModel):
    as_of: date
    items: list[CommuneCoverage]


class Dashboard(BaseModel):
    """Every figure of one dashboard view; each part as the separate endpoint answers it."""

    area: Area
    year: int
    indicators: Indicators = Field(description="`/v1/indicators` of the area and year.")
    visits: Visits = Field(description="`/v1/visits` of the area, by month, over the year and the year before.")
    growth: Growth = Field(description="`/v1/growth` of the area and year.")
    provinces: list[Indicators] = Field(description="`/v1/indicators` of each province of the scheme the key reaches.")
    rotation: DashboardRotations = Field(description="`/v1/rotation/provinces` today (provinces the key reaches), "
                                                     "with batches in transit and on hand per province.")
    communes: CommuneCoverages = Field(description="Per province: communes, and communes with a library in the "
                                                   "model today.")


class LibraryItem(BaseModel):
    library_id: str
    name_vi: str
    name_en: str
    library_type: str
    status: str
    operating: bool
    opened_on: date | None
    model_joined_on: date | None
    in_model: bool
    latitude: float | None
    longitude: float | None
    areas: Codes


class Libraries(_Page):
    area: Area
    as_of: date
    items: list[LibraryItem]


class AreaItem(BaseModel):
    scheme: Scheme
    level: Literal["province", "commune"]
    code: str
    name_vi: str
    name_en: str
    province_code: str | None = Field(default=None, description="Communes only.")
    province_name_vi: str | None = None
    province_name_en: str | None = None
    district_name_vi: str | None = Field(default=None, description="Legacy communes: their former district.")
    in_programme: bool | None = Field(default=None, description="Communes: with programme territory.")


class Areas(_Page):
    scheme: Scheme
    level: Literal["province", "commune"]
    items: list[AreaItem]


class DeadLetter(BaseModel):
    dead_letter_id: str
    stage: str
    reason_code: str
    reason_vi: str
    reason_en: str
    instance_id: str
    form_id: str
    library_id: str
    submitter: str
    content_hash: str
    recorded_at: datetime
    resolved: bool


class Rejection(BaseModel):
    rejection_id: str
    form_id: str
    instance_id: str
    status: int
    reason_code: str
    reason_vi: str
    reason_en: str
    submitter: str
    received_at: datetime


class Reached(BaseModel):
    scheme: Scheme
    code: str
    name_vi: str
    name_en: str


class Me(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: str
    scopes: list[str]
    admin: bool
    read_all: bool
    provinces: dict[Scheme, list[Reached]]
    approves: dict[Scheme, list[str]] = Field(description="Province codes whose periods the key approves.")
    approves_region: bool = Field(description="Whether the key accepts approvals at the region level.")


@pydantic_dataclass
class CentralPullForm(PullState):
    """One form's pull state (``services/intake/central_state.py``), with the lag now and the verdict."""

    lag_seconds: float | None = None  # now − the newer of the newest row handled and the last complete poll
    ok: bool = False  # the last poll completed and the pull is not lagging (central_state.PullState.health)
    summary: str = ""  # one line saying so, or what is wrong


class CentralPull(BaseModel):
    poll_interval_s: float  # CENTRAL_POLL_INTERVAL_S
    forms: list[CentralPullForm]


class QualityFlag(BaseModel):
    flag_id: str = Field(description="`library_id/YYYY-MM/rule`: one flag per library, month and rule.")
    library_id: str
    month: str = Field(description="YYYY-MM.")
    rule: Literal["outlier", "zero_visits", "late_report", "breakdown_mismatch", "closed_day"]
    message_vi: str
    message_en: str
    figures: dict[str, Any] = Field(description="What the rule saw (services/domain/quality.py).")
    root_ids: list[str] = Field(description="The submission chains the flag is about (first instanceIDs).")
    instance_ids: list[str] = Field(description="Their current versions' instanceIDs, in the same order.")
    reports: int
    areas: Codes
    checked: bool = Field(description="Marked \"checked, correct\" by an officer, as the flag stands now (a mark "
                                      "given to an earlier state of the flag no longer applies).")
    checked_by: str | None = Field(description="Who marked it (the API key's name); null: unchecked.")
    checked_at: datetime | None
    check_note: str | None = Field(description="The officer's note.")


class FlagCheckTaken(BaseModel):
    """A "checked, correct" mark given or withdrawn, published (listed once the processors archived it)."""

    action_id: str
    flag_id: str
    action: Literal["check", "uncheck"]
    by: str
    at: datetime
    note: str


class DataQuality(_Page):
    area: Area
    library_type: str | None
    start: date
    end: date
    rules: list[str]
    items: list[QualityFlag]
