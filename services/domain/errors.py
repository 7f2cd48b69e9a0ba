"""Why something sent was turned away, in words a field worker can act on (Vietnamese first).

Every refusal is a ``Refused``: a status (HTTP's numbers, the language both edges speak) and
reasons in Vietnamese and English. Each edge maps it in one place: an OpenRosa response for
ODK Collect (``services/intake/openrosa.py``), problem details for the query API.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reason:
    code: str  # stable, machine-readable; also the metric label for rejections
    message_vi: str
    message_en: str
    field: str | None = None

    def text(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.message_vi} / {self.message_en}{where}"


class Refused(Exception):
    """Turned away, with ``status``, ``reasons`` and, when trying later will do, ``retry_after`` seconds."""

    def __init__(self, status: int, reasons: list[Reason], retry_after: int | None = None, detail: str = ""):
        super().__init__(detail or "; ".join(r.text() for r in reasons))
        self.status, self.reasons, self.retry_after = status, reasons, retry_after

    @property
    def code(self) -> str:
        return self.reasons[0].code


class SubmissionRejected(Refused):
    """The submission cannot be accepted as it is. ``reasons`` says why, each in VI and EN."""

    def __init__(self, reasons: list[Reason]):
        super().__init__(400, reasons)


class StorageFull(Refused):
    """The disk is full: nothing of the submission was kept (a blob, the ledger's row, the log's
    entry), so the phone keeps it and a resend once space is freed is a first submission."""

    def __init__(self, detail: str):
        super().__init__(507, [Reason(
            "storage_full", "Máy chủ hết dung lượng lưu trữ; bản gửi vẫn ở trên máy, hãy gửi lại sau.",
            "The server is out of storage space; the submission stays on the phone, send it again later.")],
            retry_after=60, detail=detail)
