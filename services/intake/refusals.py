"""Every way the intake turns a request away, each a ``Refused`` (``services/domain/errors.py``).

The domain's own are there (``SubmissionRejected``: the answers break a rule; ``StorageFull``).
These are the intake's: of the request (the OpenRosa header, the account), of the body (its
limits, its shape), of the submission against what is known (a conflict, another province's
data) and of the moment (the bus cannot make it durable). ``openrosa.py`` answers them all in
one place.
"""

from __future__ import annotations

from services.domain.errors import Reason, Refused
from services.intake.accounts import Account

# -- the request ---------------------------------------------------------------------------


class _Always(Refused):
    """A refusal that is the same every time: its status and reason are class attributes."""

    status_code: int
    reason: Reason

    def __init__(self) -> None:
        super().__init__(self.status_code, [self.reason])


class OpenRosaVersionMissing(_Always):
    status_code, reason = 400, Reason(
        "openrosa_version_missing", "Thiếu tiêu đề X-OpenRosa-Version: 1.0; hãy dùng ODK Collect.",
        "Missing header X-OpenRosa-Version: 1.0; use ODK Collect or an OpenRosa client.")


class Unauthorized(_Always):
    status_code, reason = 401, Reason(
        "unauthorized", "Cần đăng nhập bằng tài khoản của đội (tên và mật khẩu trong cài đặt máy chủ).",
        "Sign in with your team account (user name and password in the server settings).")


class TooManyFailures(Refused):
    """Wrong passwords braked per account and per address; ``wait`` seconds before the next try."""

    def __init__(self, wait: int):
        super().__init__(429, [Reason(
            "too_many_failures", f"Sai mật khẩu quá nhiều lần; hãy thử lại sau {wait} giây.",
            f"Too many wrong passwords; try again in {wait} seconds.")], retry_after=wait)


# -- the body ------------------------------------------------------------------------------


class NotMultipart(_Always):
    status_code, reason = 415, Reason(
        "not_multipart", "Bản gửi phải là multipart/form-data với phần xml_submission_file.",
        "A submission must be multipart/form-data with an xml_submission_file part.")


class NoSubmissionFile(_Always):
    status_code, reason = 400, Reason(
        "no_submission_file", "Thiếu phần 'xml_submission_file' trong bản gửi.",
        "The multipart body has no 'xml_submission_file' file part.")


class UploadRefused(Refused):
    """The body breaks a limit or is not a submission, found while reading it: the rest is not read
    (the answer closes the connection). ``raw`` is the XML part if it was read."""

    def __init__(self, status: int, reason: Reason, raw: bytes = b""):
        super().__init__(status, [reason])
        self.raw = raw


def too_large(what_vi: str, what_en: str, limit: int, size: int | None = None) -> Reason:
    size_vi, size_en = (f"{size} byte, ", f"{size} bytes, ") if size is not None else ("", "")
    return Reason("too_large", f"{what_vi} quá lớn ({size_vi}tối đa {limit} byte).",
                  f"{what_en} too large ({size_en}at most {limit} bytes).")


# -- the submission ------------------------------------------------------------------------


class SubmissionConflict(Refused):
    """The instanceID is known with different answers."""

    def __init__(self, instance_id: str):
        super().__init__(409, [Reason(
            "instance_id_conflict",
            f"Mã bản ghi {instance_id} đã được gửi với nội dung khác; hãy sửa bản ghi thay vì gửi mới.",
            f"instanceID {instance_id} was already submitted with different answers; edit it instead.",
        )])


class OutOfScope(Refused):
    """The account may not write for this library's province, or for an earlier version of the chain
    it replaces or withdraws; kept as a dead letter."""

    def __init__(self, account: Account, library_id: str, replaces: str | None = None):
        if replaces is None:
            reason = Reason(
                "out_of_scope",
                f"Tài khoản {account.username} không được gửi dữ liệu cho thư viện {library_id} "
                "(ngoài tỉnh được giao).",
                f"Account {account.username} may not submit for library {library_id} (outside its provinces).",
                "library_id")
        else:
            reason = Reason(
                "out_of_scope",
                f"Tài khoản {account.username} không được sửa hay rút bản ghi {replaces}: một phiên bản của nó "
                "thuộc thư viện ngoài tỉnh được giao.",
                f"Account {account.username} may not edit or withdraw {replaces}: a version of it is for a library "
                "outside the account's provinces.", "deprecatedID")
        super().__init__(403, [reason])


# -- the moment ----------------------------------------------------------------------------


class BusUnavailable(Refused):
    """The bus could not make the event durable (``PublishFailed``): nothing was recorded, so the
    phone keeps the submission and its resend is a first submission. ``detail`` is the bus's why."""

    def __init__(self, detail: str):
        super().__init__(503, [Reason(
            "bus_unavailable", "Máy chủ tạm thời không lưu được bản gửi; Collect sẽ gửi lại sau.",
            "The server cannot store submissions right now; Collect will retry.")], retry_after=30, detail=detail)


class LedgerUnavailable(Refused):
    """The shared ledger (PostgreSQL) cannot be reached or answer now: what the request began was
    rolled back, so the phone keeps the submission and its resend is a first submission (or, had
    the event been published already, a duplicate the processors drop). ``detail``: the driver's
    why, without a password."""

    def __init__(self, detail: str):
        super().__init__(503, [Reason(
            "ledger_unavailable", "Máy chủ tạm thời không ghi được sổ nhận; Collect sẽ gửi lại sau.",
            "The server cannot reach its intake ledger right now; Collect will retry.")],
            retry_after=30, detail=detail)
