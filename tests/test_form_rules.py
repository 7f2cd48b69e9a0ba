"""Form rules = server rules: every rule a form's ``parse`` checks (its ``RULES``) is a constraint
in the XLSForm with Vietnamese and English messages, or says in writing why it is not; and a
submission breaking the rule is refused by the server, in both languages.

Reads the XLSForm sources with openpyxl (no Java, no build): the built XForm's constraints are
pyxform's copy of these cells, and tests/test_forms_build.py builds them with ODK Validate.
"""

from __future__ import annotations

import unicodedata
from datetime import date, timedelta
from functools import cache

import openpyxl
import pytest

from services.config import REPO_ROOT
from services.domain.errors import SubmissionRejected
from services.domain.forms import FORMS, FormSpec
from services.domain.forms.rules import FieldRule
from services.domain.reference import default_reference
from services.domain.submission import Submission
from services.tools.samples import all_sample_reports

pytestmark = pytest.mark.unit  # reads .xlsx files only: no Java, server or ClickHouse

VI, EN = "constraint_message::Tiếng Việt (vi)", "constraint_message::English (en)"
SPECS: tuple[FormSpec, ...] = tuple(FORMS.values())
TODAY = date(2026, 11, 25)


def _norm(expression: str) -> str:
    return " ".join(expression.split())


@cache
def survey(form_id: str) -> dict[str, dict[str, str]]:
    """Question name → its survey row (column → text) in odk-forms/<form_id>.xlsx."""
    sheet = openpyxl.load_workbook(REPO_ROOT / "odk-forms" / f"{form_id}.xlsx", read_only=True)["survey"]
    rows = sheet.iter_rows(values_only=True)
    header = [str(h) if h else "" for h in next(rows)]
    out = {}
    for row in rows:
        cells = {h: str(v) for h, v in zip(header, row, strict=False) if h and v is not None}
        if cells.get("name"):
            out[cells["name"]] = cells
    return out


@cache
def choice_lists(form_id: str) -> dict[str, set[str]]:
    sheet = openpyxl.load_workbook(REPO_ROOT / "odk-forms" / f"{form_id}.xlsx", read_only=True)["choices"]
    rows = sheet.iter_rows(values_only=True)
    header = [str(h) if h else "" for h in next(rows)]
    lists: dict[str, set[str]] = {}
    for row in rows:
        cells = dict(zip(header, row, strict=False))
        if cells.get("list_name") and cells.get("name") is not None:
            lists.setdefault(str(cells["list_name"]), set()).add(str(cells["name"]))
    return lists


def _rule_id(rule: FieldRule) -> str:
    return f"{rule.field}:{rule.kind}"


ALL_RULES = [pytest.param(f.form_id, r, id=f"{f.form_id}-{_rule_id(r)}") for f in SPECS for r in f.rules]


# Forms whose parse does not list its rules yet: shrinks to nothing, never grows.
NOT_YET_DECLARED: set[str] = set()


def test_every_form_declares_its_rules():
    missing = {f.form_id for f in SPECS if not f.rules}
    assert missing == NOT_YET_DECLARED, f"forms whose server rules are not declared: {missing}"


@pytest.mark.parametrize(("form_id", "rule"), ALL_RULES)
def test_the_server_rule_is_in_the_form(form_id: str, rule: FieldRule):
    if rule.not_in_form:
        return  # a written reason stands in for the constraint
    row = survey(form_id).get(rule.field)
    assert row is not None, f"{form_id}: no question {rule.field!r} for the server's rule {rule}"
    if rule.kind == "choice":
        list_name = row["type"].split()[1]
        assert choice_lists(form_id)[list_name] == set(rule.allowed), f"{form_id}.{rule.field}: choices differ"
        return
    constraint = _norm(row.get("constraint", ""))
    for term in rule.xpath_terms():
        assert term in constraint, f"{form_id}.{rule.field}: constraint {constraint!r} lacks {term!r} ({rule.kind})"
    for column in (VI, EN):
        message = row.get(column, "")
        assert message, f"{form_id}.{rule.field}: no {column}"
        for bound in rule.bounds_in_messages():
            assert bound in message, f"{form_id}.{rule.field}: {column} does not show {bound}: {message!r}"


@pytest.mark.parametrize("form", SPECS, ids=lambda f: f.form_id)
def test_every_constraint_in_the_form_stands_for_a_server_rule(form: FormSpec):
    """The other way round: the phone refuses nothing the server would take without a rule saying so."""
    ruled = {r.field for r in form.rules}
    unruled = [name for name, row in survey(form.form_id).items() if "constraint" in row and name not in ruled]
    assert not unruled, f"{form.form_id}: constraints without a server rule: {unruled}"


@pytest.mark.parametrize("form", SPECS, ids=lambda f: f.form_id)
def test_every_constraint_says_what_is_wrong_in_both_languages(form: FormSpec):
    for name, row in survey(form.form_id).items():
        if "constraint" not in row:
            continue
        vi, en = row.get(VI, ""), row.get(EN, "")
        assert vi and en and vi != en, f"{form.form_id}.{name}: constraint without both messages"
        assert unicodedata.is_normalized("NFC", vi), f"{form.form_id}.{name}: Vietnamese message not NFC"


@cache
def _samples() -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {}
    for form_id, report in all_sample_reports(default_reference(), TODAY):
        found = out.setdefault(form_id, [])
        if len(found) < 200:
            found.append(report.answers)
    return out


def _breaking(rule: FieldRule, answers: dict[str, str]) -> list[dict[str, str]]:
    """Answers that break ``rule`` (each list item a change to a valid submission)."""
    others = [answers.get(o, "0") for o in rule.others]
    match rule.kind:
        case "range":
            high = rule.high or 0
            over = str(int(high) + 1) if float(high).is_integer() else str(high + 1)
            under = str(int(rule.low or 0)) if rule.above else str(int(rule.low or 0) - 1)
            return [{rule.field: over}, {rule.field: under}]
        case "at_most_field" | "sum_at_most":
            return [{rule.field: str(int(others[-1]) + 1)}]
        case "at_least_field":
            return [{rule.field: str(int(others[0]) - 1)}]
        case "not_field":
            return [{rule.field: others[0]}]
        case "sum_equals":
            return [{rule.field: str(int(answers[rule.field]) + 1)}]
        case "sum_at_least" | "some_positive":
            return [dict.fromkeys((rule.field, *rule.others), "0")]
        case "date_window":
            assert rule.earliest is not None
            return [{rule.field: (rule.earliest - timedelta(days=1)).isoformat()},
                    {rule.field: (TODAY + timedelta(days=1)).isoformat()}]
        case "max_length":
            return [{rule.field: "x" * (int(rule.high or 0) + 1)}]
        case "pattern":
            return [{rule.field: "X-1"}]
        case "geo_box":
            return [{rule.field: "48.85 2.35 35 5"}, {rule.field: "16 95 0 5"}]
        case "choice":
            return [{rule.field: "not_a_choice"}]
    return []


@pytest.mark.parametrize(("form_id", "rule"), [p for p in ALL_RULES if p.values[1].kind != "server_only"])
def test_a_submission_breaking_the_rule_is_refused_in_both_languages(form_id: str, rule: FieldRule):
    parse = FORMS[form_id].parse
    # a sample that answers every field the rule reads (optional questions are often unanswered)
    answers = next(a for a in _samples()[form_id] if all(f in a for f in (rule.field, *rule.others)))
    for change in _breaking(rule, answers):
        submission = Submission(form_id, "1", "uuid:3f2a9c1b-0000-4000-8000-000000000000", None, answers | change,
                                "h")
        with pytest.raises(SubmissionRejected) as refused:
            parse(submission, TODAY, default_reference())
        about = [r for r in refused.value.reasons if r.field in (rule.field, *rule.others)]
        assert about, f"{form_id}: {change} broke {rule} but the reasons name other fields: {refused.value.reasons}"
        for reason in about:
            assert reason.message_vi and reason.message_en and reason.message_vi != reason.message_en
