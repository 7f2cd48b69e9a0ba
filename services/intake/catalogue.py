"""The forms this server offers to ODK Collect, with their media files.

Built XForms are read from ``FORMS_DIR``; when it holds none (a fresh clone), the
XLSForms are built there first, with ODK Validate. Media CSVs (library and province
pickers) are generated from the reference data, so the phone's lists always match the
registry the intake validates against: ``libraries.csv`` from the registry as the intake knows
it now (``LibraryDirectory``: the seed plus the libraries registered through the registry
form), made again whenever that changes. Its md5 in the form's manifest changes with it, and
that is what makes ODK Collect offer the update: Collect compares each media file's manifest
hash with the copy it has (``ServerFormDetailsFetcher.areNewerMediaFilesAvailable``), even when
the form's own hash is the same, and downloads the files that differ.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree as SafeET

from services.domain.reference import Reference
from services.intake.forms import build_all

log = logging.getLogger(__name__)
_H = "{http://www.w3.org/1999/xhtml}"
_XF = "{http://www.w3.org/2002/xforms}"


@dataclass(frozen=True)
class ServedForm:
    form_id: str
    version: str
    title: str
    xml: bytes
    media_names: tuple[str, ...] = ()  # the media files the form's XML names, served with it

    @property
    def md5(self) -> str:
        return hashlib.md5(self.xml).hexdigest()


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def libraries_csv(reference: Reference) -> bytes:
    """``libraries.csv`` (name,label,province): every library of ``reference``, by id, labelled with
    its name (NFC, as the registry form gave it) and with its 2025 province."""
    libraries = sorted(reference.libraries.values(), key=lambda lib: lib.library_id)
    return _csv(["name", "label", "province"],
                [[lib.library_id, lib.name_vi, lib.area("2025").province_code] for lib in libraries])


def media_files(reference: Reference) -> dict[str, bytes]:
    """Form media for pickers, generated from the reference data (see odk-forms/README.md).

    - ``provinces.csv`` (name,label): the current (2025) programme provinces;
    - ``libraries.csv`` (name,label,province): registered libraries with their 2025 province;
    - ``communes_2025.csv`` (name,label,province): 2025 communes with programme territory;
    - ``communes_legacy.csv`` (name,label,code_2025): one row per (legacy commune → 2025 commune)
      pair of the commune mapping, so that filtering on ``code_2025`` lists every former commune
      (or part of a split one) inside the chosen 2025 commune. A split commune's label says so.
    """
    provinces = reference.provinces_in("2025")
    communes_2025 = [c for c in reference.communes_in("2025") if reference.in_programme(c.code)]
    legacy_rows = []
    for legacy_code, code_2025 in reference.mapping_pairs():
        commune = reference.commune("legacy", legacy_code)
        if commune is None:  # pragma: no cover - the generator checks every mapped commune exists
            continue
        label = f"{commune.name_vi} ({commune.district_name_vi})" if commune.district_name_vi else commune.name_vi
        if len(reference.commune_mapping[legacy_code]) > 1:
            label += " – một phần"  # split across several 2025 communes: this part
        legacy_rows.append([legacy_code, label, code_2025])
    return {
        "provinces.csv": _csv(["name", "label"], [[p.code, p.name_vi] for p in provinces]),
        "libraries.csv": libraries_csv(reference),
        "communes_2025.csv": _csv(["name", "label", "province"],
                                  [[c.code, c.name_vi, c.province_code] for c in communes_2025]),
        "communes_legacy.csv": _csv(["name", "label", "code_2025"], legacy_rows),
    }


def _describe(xml: bytes) -> tuple[str, str, str]:
    root = SafeET.fromstring(xml)
    title = root.findtext(f"{_H}head/{_H}title") or ""
    instance = root.find(f"{_H}head/{_XF}model/{_XF}instance")
    if instance is None or len(instance) == 0:
        raise ValueError("XForm has no primary instance")
    data = instance[0]
    return data.get("id") or "", data.get("version") or "", title


class FormCatalogue:
    """The served forms; their media made from ``reference_now()`` (the registry as it stands),
    kept while it returns the same object."""

    def __init__(self, forms: dict[str, ServedForm], reference_now: Callable[[], Reference]):
        self.forms = forms
        self._reference_now = reference_now
        self._lock = threading.Lock()
        self._made: tuple[Reference, dict[str, bytes]] | None = None

    def media(self, form: ServedForm) -> dict[str, bytes]:
        """The form's media files as they are now (name → bytes)."""
        if not form.media_names:
            return {}
        reference = self._reference_now()
        with self._lock:
            if self._made is None:
                self._made = (reference, media_files(reference))
            elif self._made[0] is not reference:  # only the registry changes while the service runs
                self._made = (reference, {**self._made[1], "libraries.csv": libraries_csv(reference)})
            files = self._made[1]
        return {name: files[name] for name in form.media_names}

    @classmethod
    def load(cls, forms_dir: Path, src_dir: Path, reference: Reference,
             reference_now: Callable[[], Reference] | None = None) -> FormCatalogue:
        """``reference``: the seed; ``reference_now``: the registry as it stands (default: the seed)."""
        if not any(forms_dir.glob("*.xml")):
            log.info("no built forms in %s: building %s with ODK Validate", forms_dir, src_dir)
            build_all(src_dir, forms_dir)
        names = media_files(reference)
        forms = {}
        for path in sorted(forms_dir.glob("*.xml")):
            xml = path.read_bytes()
            form_id, version, title = _describe(xml)
            wanted = tuple(sorted(name for name in names if f"jr://file-csv/{name}".encode() in xml))
            forms[form_id] = ServedForm(form_id, version, title, xml, wanted)
        return cls(forms, reference_now or (lambda: reference))
