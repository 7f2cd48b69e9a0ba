"""The "checked, correct" marks of data-quality flags, as plain domain code: folded in log order (the
last action on a flag wins), a mark applies only to the flag state it was given to, and the action
travels on the approvals topic with the approval actions (services/domain/flag_checks.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.bus.codec import decode, encode
from services.bus.topics import APPROVALS, key_for, topic_for
from services.domain.flag_checks import FlagCheck, applying, fingerprint, fold

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
FLAG = "LIB-HG-0003/2026-08/late_report"
STATE = fingerprint({"reports": 1, "deadline": "2026-09-10"}, ["uuid:a"])


def action(kind: str, minutes: int, by: str = "so-ha-giang", note: str = "", state: str = STATE) -> FlagCheck:
    return FlagCheck(action_id=f"{kind}-{minutes}", action=kind, flag_id=FLAG, province="02",  # type: ignore[arg-type]
                     fingerprint=state if kind == "check" else "", note=note, by=by,
                     at=AT + timedelta(minutes=minutes))


def test_the_last_action_on_a_flag_wins_and_a_withdrawal_clears_it():
    marks = fold([action("check", 0, note="gọi điện"), action("check", 5, by="so-tuyen-quang", note="đúng")])
    assert marks[FLAG].as_dict() == {"by": "so-tuyen-quang", "at": (AT + timedelta(minutes=5)).isoformat(),
                                     "note": "đúng"}
    assert fold([action("check", 0), action("uncheck", 1)]) == {}
    assert FLAG in fold([action("uncheck", 0), action("check", 1)])


def test_a_mark_applies_only_to_the_flag_state_it_was_given_to():
    marks = fold([action("check", 0)])
    assert applying(marks, FLAG, STATE) is not None
    another_version = fingerprint({"reports": 1, "deadline": "2026-09-10"}, ["uuid:a-edit"])
    other_figures = fingerprint({"reports": 2, "deadline": "2026-09-10"}, ["uuid:a"])
    assert applying(marks, FLAG, another_version) is None and applying(marks, FLAG, other_figures) is None
    assert applying(marks, "LIB-HG-0003/2026-09/late_report", STATE) is None
    # the same state, however its figures are ordered
    assert fingerprint({"deadline": "2026-09-10", "reports": 1}, ["uuid:a"]) == STATE


def test_a_mark_travels_on_the_approvals_topic_and_reads_back_the_same():
    mark = action("check", 0, note="Đã kiểm tra")
    assert topic_for(mark) == APPROVALS and key_for(mark) == "legacy:02"
    assert decode(encode(mark)) == mark
