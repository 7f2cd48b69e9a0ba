"""The pull's state (``services/intake/central_state.py``): what it says of a pull, read back from its file."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.config import TIMEZONE
from services.intake.central_state import PullState, read_states, state_path

pytestmark = pytest.mark.unit
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=TIMEZONE)


def test_a_pull_that_never_completed_a_poll_is_not_ok():
    state = PullState(3, "visit_log")
    assert math.isnan(state.lag_seconds(NOW))
    assert state.health(60, NOW) == (False, "project 3 form visit_log: no complete poll yet")
    assert state.as_json()["lag_seconds"] is None


def test_a_failed_poll_says_why_until_a_complete_one_and_the_failure_is_remembered():
    state = PullState(3, "visit_log")
    state.started(NOW)
    state.ended(NOW + timedelta(seconds=1), complete=False, error="ODK Central (submissionDate): refused")
    ok, line = state.health(60, NOW + timedelta(seconds=2))
    assert not ok and line.endswith("stopped: ODK Central (submissionDate): refused")

    state.started(NOW + timedelta(minutes=1))
    state.ended(NOW + timedelta(minutes=1, seconds=1), complete=True, error=None)
    ok, line = state.health(60, NOW + timedelta(minutes=2))
    assert ok and "lag 60 s" in line
    assert (state.polls, state.failed_polls, state.last_error) == (2, 1, None)
    assert state.last_error_at == "2026-03-02T09:00:01.000+07:00"


def test_lagging_is_three_intervals_and_at_least_ten_minutes():
    state = PullState(3, "visit_log", last_complete_poll_started=NOW.isoformat(), last_poll_ended=NOW.isoformat())
    state.handled(NOW - timedelta(hours=5))  # an old row: the complete poll is the newer mark
    assert state.health(60, NOW + timedelta(minutes=9))[0]
    assert not state.health(60, NOW + timedelta(minutes=11))[0]
    assert state.health(600, NOW + timedelta(minutes=29))[0]
    ok, line = state.health(600, NOW + timedelta(minutes=31))
    assert not ok and "lagging 1860 s" in line


def test_the_file_round_trips_and_a_stranger_or_broken_file_is_not_read_as_the_forms(tmp_path: Path):
    path = state_path(tmp_path / "central" / "3-visit_log.json")
    assert path.name == "3-visit_log.state.json"
    state = PullState(3, "visit_log", "https://central.example.org", rows={"accepted": 4})
    state.handled(NOW)
    state.save(path)
    assert PullState.load(path, 3, "visit_log") == state
    assert read_states(tmp_path / "central") == [state]
    assert PullState.load(path, 4, "visit_log") == PullState(4, "visit_log")  # another project's file
    path.write_text("{not json", "utf-8")
    assert PullState.load(path, 3, "visit_log") == PullState(3, "visit_log")
    assert read_states(tmp_path / "central") == [] and read_states(tmp_path / "nowhere") == []
