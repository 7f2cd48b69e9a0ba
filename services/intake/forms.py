"""Build XForms from the XLSForms in ``odk-forms/`` (pyxform + ODK Validate).

Plain Python, no web imports: used by the intake service at start-up, by CI, and
from the command line::

    python -m services.intake.forms [forms_dir] [out_dir]     # defaults: odk-forms build/forms

Why not the ``xls2xform`` CLI: it logs ODK Validate failures (and a missing Java)
and still exits 0, so a broken form would pass a build. Here every failure raises
:class:`FormBuildError` and the CLI exits non-zero.

pyxform 4.x API used: ``pyxform.xls2xform.convert(xlsform=..., validate=True)``.
With ``validate=True`` pyxform writes the XForm to a temporary file and runs the
bundled ``ODK_Validate.jar`` with ``java`` (Java 8+ on PATH); a rejected form raises
``pyxform.validators.odk_validate.ODKValidateError``, a missing ``java`` raises
``OSError``. A validator that times out (100 s) or dies on a signal does *not*
raise in pyxform: it only appends a warning. We treat that as a failure, because
the form was not validated.

Caveat: ODK Validate loads the form and evaluates calculations and relevance
conditions, but not constraints. An unknown function inside a ``constraint`` passes
validation and only fails on the phone when the question is answered.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from pyxform.errors import PyXFormError
from pyxform.validators.odk_validate import ODKValidateError
from pyxform.xls2xform import convert

__all__ = ["BuiltForm", "FormBuildError", "build_all", "build_form", "main"]

DEFAULT_FORMS_DIR = Path("odk-forms")
DEFAULT_OUT_DIR = Path("build/forms")

_XHTML_NS = "http://www.w3.org/1999/xhtml"
_XFORMS_NS = "http://www.w3.org/2002/xforms"

# Form attachments referenced by the XForm: external CSV/XML instances
# (jr://file-csv/, jr://file/) and question media (jr://images/ etc.).
_MEDIA_RE = re.compile(r"jr://(?:file-csv|file|images|audio|video)/([^\s\"'<>()]+)")

# pyxform reports these as *warnings*, but they mean ODK Validate did not finish.
_VALIDATOR_DID_NOT_FINISH = (
    "XForm took to long to completely validate.",  # sic, pyxform's wording
    "Bad return code from ODK Validate.",
)


class FormBuildError(Exception):
    """A form could not be built.

    ``message`` is the underlying message (for ODK Validate: its cleaned-up error
    report), ``path`` the XLSForm, ``stage`` where it failed: ``"input"``,
    ``"pyxform"``, ``"java"``, ``"odk_validate"`` or ``"output"``.
    """

    def __init__(self, message: str, *, path: Path | None = None, stage: str = "pyxform") -> None:
        self.message = message
        self.path = path
        self.stage = stage
        prefix = f"{path}: " if path is not None else ""
        super().__init__(f"{prefix}[{stage}] {message}")


@dataclass(frozen=True)
class BuiltForm:
    form_id: str
    version: str
    title: str
    xml_path: Path
    md5: str  # hex digest of the XML bytes as written
    media_files: list[str]  # attachment file names the form expects, sorted
    warnings: tuple[str, ...] = field(default=(), compare=False)


def _java_available() -> bool:
    return shutil.which("java") is not None


def _read_metadata(xml: str, path: Path) -> tuple[str, str, str]:
    """(form_id, version, title) from the primary instance and <h:title>."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:  # pragma: no cover - pyxform output is well-formed
        raise FormBuildError(f"generated XML does not parse: {exc}", path=path, stage="pyxform") from exc
    title_el = root.find(f"{{{_XHTML_NS}}}head/{{{_XHTML_NS}}}title")
    primary = None
    for inst in root.iter(f"{{{_XFORMS_NS}}}instance"):
        if inst.get("id") is None:
            primary = inst
            break
    data = next(iter(primary), None) if primary is not None else None
    if data is None:  # pragma: no cover - pyxform always emits one
        raise FormBuildError("generated XML has no primary instance", path=path, stage="pyxform")
    form_id = data.get("id") or ""
    version = data.get("version") or ""
    if not form_id:
        raise FormBuildError("form has no form_id (settings sheet)", path=path, stage="input")
    if not version:
        # Every event carries form_id + form_version; an unversioned form breaks that.
        raise FormBuildError(
            "form has no version (settings sheet, e.g. 2026112501 = yyyymmddnn)", path=path, stage="input"
        )
    title = (title_el.text or "") if title_el is not None else ""
    return form_id, version, title


def _media_files(xml: str) -> list[str]:
    return sorted({m.group(1) for m in _MEDIA_RE.finditer(xml)})


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_form(xlsform_path: Path, out_dir: Path, validate: bool = True) -> BuiltForm:
    """Convert one XLSForm, optionally check it with ODK Validate, write ``<form_id>.xml``.

    Nothing is written when conversion or validation fails.
    """
    xlsform_path = Path(xlsform_path)
    out_dir = Path(out_dir)
    if not xlsform_path.is_file():
        raise FormBuildError("XLSForm file not found", path=xlsform_path, stage="input")
    if validate and not _java_available():
        raise FormBuildError(
            "ODK Validate needs Java (8+) and no 'java' was found on PATH; "
            "install Java or build with validate=False",
            path=xlsform_path,
            stage="java",
        )

    warnings: list[str] = []
    try:
        result = convert(xlsform=str(xlsform_path), validate=validate, pretty_print=True, warnings=warnings)
    except ODKValidateError as exc:
        raise FormBuildError(str(exc), path=xlsform_path, stage="odk_validate") from exc
    except PyXFormError as exc:
        raise FormBuildError(str(exc), path=xlsform_path, stage="pyxform") from exc
    except OSError as exc:  # java vanished between the check and the run, unreadable file, ...
        stage = "java" if "java" in str(exc).lower() else "input"
        raise FormBuildError(str(exc), path=xlsform_path, stage=stage) from exc
    except Exception as exc:  # anything else pyxform/openpyxl throw on a malformed workbook
        raise FormBuildError(f"{type(exc).__name__}: {exc}", path=xlsform_path, stage="pyxform") from exc

    if validate:
        for w in warnings:
            if w.strip() in _VALIDATOR_DID_NOT_FINISH:
                raise FormBuildError(
                    f"ODK Validate did not finish: {w.strip()}", path=xlsform_path, stage="odk_validate"
                )

    xml = result.xform
    form_id, version, title = _read_metadata(xml, xlsform_path)
    data = xml.encode("utf-8")
    xml_path = out_dir / f"{form_id}.xml"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(xml_path, data)
    except OSError as exc:
        raise FormBuildError(f"cannot write {xml_path}: {exc}", path=xlsform_path, stage="output") from exc

    return BuiltForm(
        form_id=form_id,
        version=version,
        title=title,
        xml_path=xml_path,
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        media_files=_media_files(xml),
        warnings=tuple(warnings),
    )


def _xlsform_files(forms_dir: Path) -> list[Path]:
    return sorted(p for p in forms_dir.glob("*.xlsx") if p.is_file() and not p.name.startswith("~$"))


def build_all(forms_dir: Path, out_dir: Path) -> list[BuiltForm]:
    """Build (with ODK Validate) every ``*.xlsx`` in ``forms_dir``; stop at the first failure."""
    forms_dir = Path(forms_dir)
    if not forms_dir.is_dir():
        raise FormBuildError(f"forms directory not found: {forms_dir}", stage="input")
    built: list[BuiltForm] = []
    seen: dict[str, Path] = {}
    for path in _xlsform_files(forms_dir):
        form = build_form(path, out_dir, validate=True)  # FormBuildError names the file
        if form.form_id in seen:
            raise FormBuildError(
                f"form_id {form.form_id!r} is also used by {seen[form.form_id]}; "
                f"{form.xml_path} was overwritten",
                path=path,
                stage="input",
            )
        seen[form.form_id] = path
        built.append(form)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.intake.forms",
        description="Build XForms from XLSForms with pyxform and ODK Validate (needs Java).",
    )
    parser.add_argument("forms_dir", nargs="?", type=Path, default=DEFAULT_FORMS_DIR)
    parser.add_argument("out_dir", nargs="?", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)

    try:
        forms = build_all(args.forms_dir, args.out_dir)
    except FormBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not forms:
        print(f"error: no *.xlsx forms in {args.forms_dir}", file=sys.stderr)
        return 1
    for f in forms:
        for w in f.warnings:
            print(f"warning: {f.form_id}: {w}", file=sys.stderr)
        media = ",".join(f.media_files) or "-"
        print(f"{f.form_id}\t{f.version}\tmd5:{f.md5}\t{f.xml_path}\tmedia={media}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
