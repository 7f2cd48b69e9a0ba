"""What the intake's parser and form validation are fuzzed with, and the entry point they are fuzzed at.

Shared by ``tests/test_fuzz_intake.py`` (hypothesis, in ``make test``) and ``bench/fuzz_intake.py``
(atheris, a longer run): valid submissions of every programme form (the sample generator's answers
filled into the served XForms), ways to break them, and ``accept``, which runs a submission through
what the intake runs before storing anything: ``parse_submission``, the form's ``parse`` and the
event model. The contract: an event, or ``SubmissionRejected`` with reasons; nothing else.
"""

from __future__ import annotations

import copy
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from services.clock import now_local, today_local
from services.domain.errors import Reason, SubmissionRejected
from services.domain.events import Envelope
from services.domain.forms import FORMS
from services.domain.reference import Reference, default_reference
from services.domain.submission import parse_submission
from services.tools.load_samples import last_month_end
from services.tools.samples import SampleReport, all_sample_reports
from services.tools.submissions import fill_instance

# the answer holding each form's event date
DATE_FIELD = {"visit_log": "report_date", "library_registry": "effective_date", "rotation_movement": "movement_date",
              "mobile_session": "session_date", "reading_promotion": "event_date", "staff_training": "completed_on",
              "donation": "received_on"}
# answers that make a form's samples take different paths through its parse
_VARIANTS = ("action", "movement", "origin", "donor_kind", "occasion", "result")


# --- the entry point ------------------------------------------------------------------------

def accept(raw: bytes, today: date | None = None, reference: Reference | None = None,
           now: datetime | None = None) -> Envelope:
    """The event the intake would publish for ``raw`` (first version, no attachments), or
    ``SubmissionRejected``. Form versions are the catalogue's business, not checked here."""
    reference = reference or default_reference()
    now = now or now_local()
    submission = parse_submission(raw)
    spec = FORMS.get(submission.form_id)
    if spec is None:
        raise SubmissionRejected([Reason("form_unknown", f"Biểu mẫu '{submission.form_id}' không có.",
                                         f"Form '{submission.form_id}' is not served here.")])
    parsed = spec.parse(submission, today or now.date(), reference)
    return spec.event_model(
        event_id=submission.instance_id, root_id=submission.instance_id, deprecated_id=submission.deprecated_id,
        form_id=submission.form_id, form_version=submission.form_version, submitted_at=now,
        occurred_on=parsed.occurred_on, library_id=parsed.library_id, areas=parsed.areas, submitter="fuzz",
        source="openrosa", content_hash=submission.content_hash, attachments=[], payload=parsed.payload)


def outcome(raw: bytes) -> Envelope | SubmissionRejected:
    """``accept``, with the rejection checked to be one a field worker can read; any other
    exception propagates (that is the bug a fuzzer looks for)."""
    try:
        event = accept(raw)
    except SubmissionRejected as rejected:
        assert rejected.reasons, "a rejection without a reason"
        for reason in rejected.reasons:
            assert reason.code and reason.message_vi and reason.message_en, reason
        return rejected
    # what the bus would carry decodes to the same event
    assert type(event).model_validate_json(event.model_dump_json()) == event
    return event


# --- valid submissions ----------------------------------------------------------------------

@cache
def sample_reports(per_form: int = 3) -> dict[str, tuple[SampleReport, ...]]:
    """Up to ``per_form`` samples of each form, taking different paths (registry actions, …) first."""
    chosen: dict[str, list[SampleReport]] = {form_id: [] for form_id in FORMS}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for form_id, report in all_sample_reports(default_reference(), last_month_end(today_local())):
        variant = (form_id, tuple(report.answers.get(k, "") for k in _VARIANTS))
        if len(chosen[form_id]) < per_form and variant not in seen:
            seen.add(variant)
            chosen[form_id].append(report)
    return {form_id: tuple(reports) for form_id, reports in chosen.items()}


def read_xforms(forms_dir: Path) -> dict[str, bytes]:
    return {form_id: (forms_dir / f"{form_id}.xml").read_bytes() for form_id in FORMS}


def valid_submissions(xforms: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """(form_id, submission XML) of the samples, as Collect would send them."""
    return [(form_id, fill_instance(xforms[form_id], report.answers, report.instance_id))
            for form_id, reports in sample_reports().items() for report in reports]


# --- breaking them --------------------------------------------------------------------------

_VIETNAMESE = "aăâbcdđeêghiklmnoôơpqrstuưvxyàằầèềìòồờùừỳảẳẩẻểỉỏổởủửỷãẵẫẽễĩõỗỡũữỹáắấéếíóốớúứýạặậẹệịọộợụựỵ"
SPECIAL_VALUES = (
    "", " ", "0", "-0", "+5", "-1", "-999999999", "1_000", "１２", "٣", "1e3", "1e309", "-1e309", "1e-400", "nan",
    "NaN", "inf", "-inf", "Infinity", "0x10", "0.5", "12.", ".5", "9" * 5000, "2024-02-30", "0001-01-01", "9999-12-31",
    "2019-12-31", "2020-01-01", "20240101", "2024-W01-1", "2024-13-01", "2024-01-01T99:99", "uuid:", "uuid:0",
    "a b c", "<", "&", "]]>", "\u200b", "\ufeff", "Thư viện", unicodedata.normalize("NFD", "Thư viện xã Lũng Cú"),
    "23.0 105.0 0 0", "90 180", "-90 -180", "1e308 1e308", "nan nan", "23 105 -5 -1", "23 105 0 inf", "23",
    "23 105 1 2 3",
    "book_lending book_lending", "yes", "no", "LC-08-2025-014", "HG-0042", "LIB-HG-0001", "LIB-ZZ-0000",
    "02", "08", "00000", "99999", "register", "update", "model_joined",
)


def _dates() -> st.SearchStrategy[str]:
    today = today_local()
    return st.one_of(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
                     st.dates(min_value=date(2019, 12, 1), max_value=today + timedelta(days=40))).map(date.isoformat)


VALUES: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(SPECIAL_VALUES),
    st.integers(min_value=-10**40, max_value=10**40).map(str),
    st.integers(min_value=-5, max_value=2_000_000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    _dates(),
    st.text(max_size=40),
    st.text(alphabet=_VIETNAMESE + " ", max_size=40).map(lambda s: unicodedata.normalize("NFD", s)),
    st.text(max_size=300),
)
_NAMES = st.one_of(st.sampled_from(["meta", "instanceID", "instanceName", "library_id", "province", "visits_total",
                                    "x", "group", "h:html"]),
                   st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,10}", fullmatch=True))

BILLION_LAUGHS = ('<!DOCTYPE r [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "&lol;") * 10}">'
                            for i in range(1, 10)) + "]>")
PROLOGUES = (
    BILLION_LAUGHS,
    '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    '<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:1/x">]>',
    '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p.dtd"> %p;]>',
    '<!DOCTYPE r [<!ENTITY x "plain">]>',
    '<!DOCTYPE r SYSTEM "http://127.0.0.1:1/r.dtd">',
    "<!DOCTYPE r>",
    "<!-- a comment -->",
    '<?xml-stylesheet href="x.xsl"?>',
)
ENTITY_REFS = ("&lol9;", "&x;", "&undefined;", "&#0;", "&#xD800;", "&#65;", "&amp;", "&lt;")
DECLARATIONS = ('<?xml version="1.0" encoding="UTF-8"?>', '<?xml version="1.0" encoding="latin-1"?>',
                '<?xml version="1.0" encoding="utf-16"?>', '<?xml version="1.0" encoding="no-such-codec"?>',
                '<?xml version="1.1"?>', '<?xml version="2.0"?>', "")
_MARK = "FUZZMARK"  # a leaf text replaced by an entity reference after serialising (ElementTree escapes '&')

Draw = Callable[[st.SearchStrategy[Any]], Any]


def _pick(draw: Draw, items: list[ET.Element]) -> ET.Element:
    return items[draw(st.integers(min_value=0, max_value=len(items) - 1))]


def _mutate_tree(draw: Draw, root: ET.Element) -> bool:
    """One change to the tree; True when a leaf now holds ``_MARK``."""
    parents = {child: parent for parent in root.iter() for child in parent}
    nodes = list(parents)
    leaves = [n for n in nodes if len(n) == 0] or [root]
    op = draw(st.sampled_from(["text"] * 8 + ["drop", "drop", "duplicate", "add", "rename", "attr", "nest",
                                                "entity", "tail"]))
    if op == "text":
        _pick(draw, leaves).text = draw(VALUES)
    elif op == "drop" and nodes:
        node = _pick(draw, nodes)
        parents[node].remove(node)
    elif op == "duplicate" and nodes:
        node = _pick(draw, nodes)
        parent = parents[node]
        parent.insert(list(parent).index(node), copy.deepcopy(node))
    elif op == "add":
        ET.SubElement(_pick(draw, [root, *nodes]), draw(_NAMES)).text = draw(VALUES)
    elif op == "rename" and nodes:
        _pick(draw, nodes).tag = draw(_NAMES)
    elif op == "attr":
        name = draw(st.sampled_from(["id", "version", "xmlns", "{http://www.w3.org/2001/XMLSchema-instance}nil"]))
        root.set(name, draw(st.one_of(st.sampled_from(sorted(FORMS)), VALUES)))
    elif op == "nest":
        leaf = _pick(draw, leaves)
        inner = leaf
        for _ in range(draw(st.sampled_from([1, 2, 31, 32, 33, 200]))):
            inner = ET.SubElement(inner, "g")
        inner.text = draw(VALUES)
    elif op == "entity":
        _pick(draw, leaves).text = _MARK
        return True
    elif op == "tail":
        _pick(draw, leaves).tail = draw(VALUES)
    return False


@st.composite
def mutated(draw: Draw, seeds: list[tuple[str, bytes]]) -> bytes:
    """A valid submission with a few changes to its elements, then perhaps to its text or bytes."""
    _, xml = draw(st.sampled_from(seeds))
    root = ET.fromstring(xml)
    marked = False
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        marked |= _mutate_tree(draw, root)
    body = ET.tostring(root, encoding="unicode")
    if marked:
        body = body.replace(_MARK, draw(st.sampled_from(ENTITY_REFS)))
    head = draw(st.sampled_from([DECLARATIONS[0]] * 6 + list(DECLARATIONS)))
    if marked or draw(st.integers(0, 9)) == 0:
        head += draw(st.sampled_from(PROLOGUES))
    text = head + body
    if draw(st.integers(0, 5)) == 0:
        text = unicodedata.normalize(draw(st.sampled_from(["NFC", "NFD", "NFKC", "NFKD"])), text)
    raw = text.encode("utf-8")
    byte_op = draw(st.sampled_from(["none"] * 9 + ["truncate", "insert", "flip"]))
    if byte_op != "none" and raw:
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        if byte_op == "truncate":
            raw = raw[:at]
        elif byte_op == "insert":
            raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
        else:
            raw = raw[:at] + bytes([raw[at] ^ (1 << draw(st.integers(0, 7)))]) + raw[at + 1:]
    return raw


def xmlish() -> st.SearchStrategy[bytes]:
    """Arbitrary, mostly well-formed XML: random names, attributes (sometimes a form's id) and text."""
    def element(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        attrs = st.one_of(st.just(""), st.sampled_from(sorted(FORMS)).map(lambda f: f' id="{f}"'),
                          st.sampled_from(sorted(FORMS)).map(lambda f: f' id="{f}" version="2025010101"'))
        return st.builds(lambda name, attr, kids: f"<{name}{attr}>{''.join(kids)}</{name}>",
                         _NAMES, attrs, st.lists(children, max_size=5))

    leaf = st.one_of(VALUES.map(lambda v: v.replace("&", "&amp;").replace("<", "&lt;")), st.text(max_size=10))
    tree = st.recursive(leaf, element, max_leaves=30)
    return st.tuples(st.sampled_from(DECLARATIONS), tree).map(lambda t: (t[0] + t[1]).encode("utf-8"))


def anything(seeds: list[tuple[str, bytes]]) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(lambda s: s.encode("utf-8")),
                     xmlish(), mutated(seeds), mutated(seeds))
