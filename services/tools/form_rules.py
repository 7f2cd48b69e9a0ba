"""Write the server's rules that a form lacks into its XLSForm (odk-forms/*.xlsx), and raise its version.

The .xlsx files stay the hand-edited source (odk-forms/README.md); this only adds, to the
question's ``constraint``, a rule its form module declares (``RULES``) and the form does not
yet say, with Vietnamese and English messages made from the same bounds. Rules it cannot
word (anything but the geopoint box, so far) are reported for a person to write.

    .venv/bin/python -m services.tools.form_rules            # every form; prints what changed
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import openpyxl

from services.config import REPO_ROOT
from services.domain.forms import FORMS
from services.domain.forms.common import _VIETNAM_LATITUDE, _VIETNAM_LONGITUDE
from services.domain.forms.rules import FieldRule

VI, EN = "constraint_message::Tiếng Việt (vi)", "constraint_message::English (en)"


def _messages(rule: FieldRule) -> tuple[str, str] | None:
    if rule.kind == "geo_box":
        (south, north), (west, east) = _VIETNAM_LATITUDE, _VIETNAM_LONGITUDE
        return (f"Vị trí nằm ngoài Việt Nam (vĩ độ {south:g}–{north:g}, kinh độ {west:g}–{east:g}); "
                "hãy lấy lại vị trí GPS.",
                f"The position is outside Vietnam (latitude {south:g}–{north:g}, longitude {west:g}–{east:g}); "
                "take the GPS position again.")
    return None


def _next_version(version: str, today: date) -> str:
    """``yyyymmddnn``: today's first, or the next number when the form already changed today."""
    prefix = today.strftime("%Y%m%d")
    return f"{int(version) + 1}" if version.startswith(prefix) else f"{prefix}01"


def apply(form_id: str, form_rules: tuple[FieldRule, ...], forms_dir: Path, today: date) -> list[str]:
    """Add the missing rules to ``forms_dir/<form_id>.xlsx``; the changes made (and the rules left) as text."""
    path = forms_dir / f"{form_id}.xlsx"
    book = openpyxl.load_workbook(path)
    sheet = book["survey"]
    header = {str(c.value): c.column for c in sheet[1] if c.value}
    notes = []
    for rule in form_rules:
        if rule.not_in_form or rule.kind in ("choice", "server_only"):
            continue
        row = next((r for r in range(2, sheet.max_row + 1)
                    if sheet.cell(r, header["name"]).value == rule.field), None)
        if row is None:
            notes.append(f"{form_id}.{rule.field}: no such question; rule {rule.kind} left for a person")
            continue
        cell = sheet.cell(row, header["constraint"])
        current = " ".join(str(cell.value or "").split())
        missing = [t for t in rule.xpath_terms() if t not in current]
        if not missing:
            continue
        messages = _messages(rule)
        if messages is None or current:
            # merging wording into an existing message is a person's job
            notes.append(f"{form_id}.{rule.field}: lacks {missing}; write it by hand")
            continue
        cell.value = rule.constraint()
        sheet.cell(row, header[VI]).value, sheet.cell(row, header[EN]).value = messages
        notes.append(f"{form_id}.{rule.field}: constraint {cell.value!r}")
    if any("constraint" in n for n in notes):
        settings = book["settings"]
        column = next(c.column for c in settings[1] if c.value == "version")
        settings.cell(2, column).value = _next_version(str(settings.cell(2, column).value), today)
        book.save(path)
    return notes


def main(argv: list[str]) -> int:
    forms_dir = Path(argv[0]) if argv else REPO_ROOT / "odk-forms"
    for spec in FORMS.values():
        for line in apply(spec.form_id, spec.rules, forms_dir, date.today()):
            print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
