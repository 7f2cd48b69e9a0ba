"""Safe parsing of an ODK submission (the ``xml_submission_file`` part) into plain values.

defusedxml refuses DTDs, entities and external references, so a hostile file cannot
expand or reach the network; the size limit is the caller's (intake) job, checked before.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from xml.etree.ElementTree import Element

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from services.domain.errors import Reason, SubmissionRejected

MAX_DEPTH = 32  # elements below the root: groups in groups, far more than any programme form uses


@dataclass(frozen=True)
class Submission:
    form_id: str
    form_version: str
    instance_id: str
    deprecated_id: str | None
    answers: dict[str, str]  # leaf path below the root ("visits/visits_total") → NFC text
    content_hash: str  # sha256 of the canonical answers: same answers, same hash

    def answer(self, name: str) -> str | None:
        """The answer whose leaf name is ``name``, wherever the form's groups put it."""
        if "/" not in name:
            return self._by_leaf.get(name)
        for path, value in self.answers.items():
            if path == name or path.endswith("/" + name):
                return value
        return None

    @cached_property
    def _by_leaf(self) -> dict[str, str]:
        """Leaf name → the first answer with it: a form's validation asks for every field by name,
        and scanning every path each time cost about as much as parsing the XML."""
        found: dict[str, str] = {}
        for path, value in self.answers.items():
            found.setdefault(path.rsplit("/", 1)[-1], value)
        return found


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _leaves(element: Element, prefix: str, out: dict[str, str], depth: int = 1) -> None:
    for child in element:
        path = f"{prefix}{_local(child.tag)}"
        if len(child):
            if depth >= MAX_DEPTH:  # a form's groups nest a few levels; thousands would exhaust the stack
                raise SubmissionRejected([Reason(
                    "xml_too_deep", f"Tệp gửi lên lồng nhau quá {MAX_DEPTH} cấp; hãy gửi lại từ ODK Collect.",
                    f"The submission nests elements more than {MAX_DEPTH} levels deep; resend it from ODK Collect.",
                )])
            _leaves(child, path + "/", out, depth + 1)
        else:
            out[path] = unicodedata.normalize("NFC", (child.text or "").strip())


def canonical_hash(answers: dict[str, str]) -> str:
    """Hash of the answers, independent of XML formatting and attribute order."""
    blob = json.dumps(sorted(answers.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def parse_submission(raw: bytes) -> Submission:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionRejected([Reason(
            "not_utf8",
            f"Tệp gửi lên không phải UTF-8 (byte lỗi ở vị trí {exc.start}); hãy gửi lại từ ODK Collect.",
            f"The submission is not valid UTF-8 (bad byte at offset {exc.start}); resend it from ODK Collect.",
        )]) from exc
    try:
        # The text, not the bytes: it is UTF-8 whatever its XML declaration says, so a declared
        # encoding can neither garble it (latin-1) nor fail the parser (an unknown name).
        root = SafeET.fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise SubmissionRejected([Reason(
            "xml_forbidden_construct",
            "Tệp gửi lên chứa cấu trúc XML không được phép (DTD/entity).",
            f"The submission contains a forbidden XML construct ({type(exc).__name__}).",
        )]) from exc
    except SafeET.ParseError as exc:
        raise SubmissionRejected([Reason(
            "xml_malformed",
            "Tệp gửi lên không phải XML hợp lệ; hãy gửi lại từ ODK Collect.",
            f"The submission is not well-formed XML ({exc}); resend it from ODK Collect.",
        )]) from exc

    form_id = root.get("id") or ""
    answers: dict[str, str] = {}
    _leaves(root, "", answers)
    instance_id = answers.pop("meta/instanceID", "")
    deprecated_id = answers.pop("meta/deprecatedID", "") or None
    # instanceName is derived from other answers; it must not make two versions differ.
    answers.pop("meta/instanceName", None)
    missing = []
    if not form_id:
        missing.append(Reason("form_id_missing", "Thiếu mã biểu mẫu (thuộc tính id).",
                              "The form id (root attribute 'id') is missing."))
    if not instance_id:
        missing.append(Reason("instance_id_missing", "Thiếu meta/instanceID.",
                              "meta/instanceID is missing.", "meta/instanceID"))
    if missing:
        raise SubmissionRejected(missing)
    return Submission(
        form_id=form_id,
        form_version=root.get("version") or "",
        instance_id=instance_id,
        deprecated_id=deprecated_id,
        answers=answers,
        content_hash=canonical_hash(answers),
    )
