"""The rules the server checks, declared once per form so the XLSForm can be held to them.

Each form module lists its ``RULES`` next to its ``parse``; the bounds in a rule are the same
constants ``parse`` passes to the readers in ``common``. ``FieldRule.xpath_terms`` says what
the field's ``constraint`` in ``odk-forms/<form_id>.xlsx`` must contain for the phone to
refuse what the server refuses; ``tests/test_form_rules.py`` checks every form against it.
A rule the phone cannot check carries ``not_in_form``: the written reason why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from services.domain.forms.common import _VIETNAM_LATITUDE, _VIETNAM_LONGITUDE, EARLIEST_DATE

Kind = Literal[
    "range",          # low <= value <= high (``above``: low < value; no ``low``: another rule bounds it below)
    "at_most_field",  # value <= ${other}
    "at_least_field",  # value >= ${other}
    "not_field",      # value != ${other}
    "sum_equals",     # ${others…} + value = ${total}
    "sum_at_most",    # ${others…} + value <= ${total}
    "sum_at_least",   # ${others…} + value >= low
    "some_positive",  # ${others…} > 0 or value > 0 (one of them must be)
    "date_window",    # earliest <= value <= today
    "max_length",     # string-length(value) <= high
    "pattern",        # the whole value matches the regex
    "geo_box",        # the geopoint lies in Vietnam's box (common._VIETNAM_*)
    "choice",         # one (or, select_multiple, each) of ``allowed``: the form's choice list must be exactly these
    "server_only",    # needs what the phone does not have (the registry, the mapping…)
]

# Reasons shared by many rules, written once.
REGISTRY = "XLSForm cannot check against the registry files on the server (only the phone's media lists)."
BOUNDED_BY_TOTAL = ("The form bounds it by the total (0 … total, or the parts summing to the total), whose own "
                    "range rule carries the bound.")
IMPLIED_BY_PATTERN = "The pattern fixes the length; the form's regex() carries it."


@dataclass(frozen=True)
class FieldRule:
    field: str  # leaf name of the question the rule is about (the one whose constraint holds it)
    kind: Kind
    low: float | None = None
    high: float | None = None
    above: bool = False  # range: low is excluded (hours > 0)
    others: tuple[str, ...] = ()  # the other fields the rule reads, in the form's order
    earliest: date | None = None
    allowed: tuple[str, ...] = ()  # choice: the names the server accepts
    pattern: str | None = None  # a regex written so Python and XPath regex() read it alike ([0-9], not \d)
    not_in_form: str = ""  # why the form does not (or need not) carry this rule; empty = it must

    def xpath_terms(self) -> tuple[str, ...]:
        """The pieces the form's constraint must contain (spacing as the forms write it)."""
        refs = [f"${{{o}}}" for o in self.others]
        match self.kind:
            case "range":
                high = f". <= {_num(self.high)}"
                if self.low is None:
                    return (high,)
                return (f". > {_num(self.low)}" if self.above else f". >= {_num(self.low)}"), high
            case "at_most_field":
                return (f". <= {refs[0]}",)
            case "at_least_field":
                return (f". >= {refs[0]}",)
            case "not_field":
                return (f". != {refs[0]}",)
            case "sum_equals":
                return (" + ".join([*refs[:-1], "."]) + f" = {refs[-1]}",)
            case "sum_at_most":
                return (" + ".join([*refs[:-1], "."]) + f" <= {refs[-1]}",)
            case "sum_at_least":
                return (" + ".join([*refs, "."]) + f" >= {_num(self.low)}",)
            case "some_positive":
                return (" or ".join([*(f"{r} > 0" for r in refs), "number(.) > 0"]),)
            case "date_window":
                assert self.earliest is not None
                return ". <= today()", f". >= date('{self.earliest.isoformat()}')"
            case "max_length":
                return (f"string-length(.) <= {_num(self.high)}",)
            case "pattern":
                return (f"regex(., '^{self.pattern}$')",)
            case "geo_box":
                return (f"selected-at(., 0) >= {_num(_VIETNAM_LATITUDE[0])}",
                        f"selected-at(., 0) <= {_num(_VIETNAM_LATITUDE[1])}",
                        f"selected-at(., 1) >= {_num(_VIETNAM_LONGITUDE[0])}",
                        f"selected-at(., 1) <= {_num(_VIETNAM_LONGITUDE[1])}")
            case "server_only" | "choice":
                return ()
        raise ValueError(self.kind)

    def constraint(self) -> str:
        return " and ".join(self.xpath_terms())

    def bounds_in_messages(self) -> tuple[str, ...]:
        """Numbers the constraint messages must show, so the worker reads the bound the server uses."""
        match self.kind:
            case "range":
                return (_num(self.high),)
            case "max_length":
                return (_num(self.high),)
            case "date_window":
                assert self.earliest is not None
                return (str(self.earliest.year),)
        return ()


def _num(value: float | None) -> str:
    assert value is not None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def event_date(field: str) -> FieldRule:
    """``common.event_date``: not in the future, not before the programme."""
    return FieldRule(field, "date_window", earliest=EARLIEST_DATE)


def counts(fields: tuple[str, ...], high: int, low: int = 0, not_in_form: str = "") -> tuple[FieldRule, ...]:
    return tuple(FieldRule(f, "range", low=low, high=high, not_in_form=not_in_form) for f in fields)


def choice(field: str, allowed: tuple[str, ...]) -> FieldRule:
    return FieldRule(field, "choice", allowed=allowed)


def geo_box(field: str) -> FieldRule:
    return FieldRule(field, "geo_box")
