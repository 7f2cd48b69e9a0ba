"""Why a submission was turned away, in words a field worker can act on (Vietnamese first)."""

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


class SubmissionRejected(Exception):
    """The submission cannot be accepted as it is. ``reasons`` says why, each in VI and EN."""

    def __init__(self, reasons: list[Reason]):
        super().__init__("; ".join(r.text() for r in reasons))
        self.reasons = reasons

    @property
    def code(self) -> str:
        return self.reasons[0].code
