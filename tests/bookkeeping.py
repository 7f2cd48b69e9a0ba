"""Nothing lost, nothing invented: every accepted submission is in the store exactly once.

After a fault test, the submissions the intake accepted (answered 201, by instanceID) must be
exactly the events archived in the store (``events``, by ``event_id`` = the instanceID) plus the
submissions in the dead-letter store (``dead_letters``, by ``instance_id``): nothing missing,
nothing the intake never accepted, no submission in both, and no event archived twice.

``events`` and ``dead_letters`` are ReplacingMergeTrees: a redelivered event rewrites its row, and
until the background merge runs both copies are there. ``FINAL`` gives the merged view; the check
without it (``count() > 1`` per key among the same version) would only measure merge timing, so
"exactly once" is checked on the merged view: one row per ``event_id`` with FINAL, and that row's
content (hash) the one the intake accepted, when the caller gives the hashes.

Retractions (``<instanceID>#retracted``, made by Central review, never answered 201) are not
submissions: they are left out, unless ``accepted`` names them. So are the processors' own dead
letters (stage ``processor``: a rotation movement that does not fit its batch): they are about
events that were archived, not submissions set aside.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from services.store.clickhouse import Store

RETRACTED_SUFFIX = "#retracted"


def _sample(ids: Iterable[str], n: int = 5) -> str:
    ordered = sorted(ids)
    more = f" … (+{len(ordered) - n} more)" if len(ordered) > n else ""
    return ", ".join(ordered[:n]) + more


def assert_bookkeeping(store_or_dsn: Store | str, accepted: set[str],
                       content_hashes: Mapping[str, str] | None = None) -> None:
    """Assert ``accepted`` (instanceIDs answered 201) == archived events ∪ dead letters, disjoint, each once.

    ``store_or_dsn``: a Store, or a DSN opened (and closed) here — for chDB, only once the worker
    that owned the directory has stopped. ``content_hashes`` (instanceID → the content hash the
    intake accepted), if given: each archived event must carry that hash.
    """
    store = Store(store_or_dsn) if isinstance(store_or_dsn, str) else store_or_dsn
    try:
        event_rows = store.select("SELECT event_id, content_hash FROM events FINAL")
        letter_rows = store.select("SELECT DISTINCT instance_id FROM dead_letters FINAL WHERE stage != 'processor'")
    finally:
        if isinstance(store_or_dsn, str):
            store.close()

    per_event = Counter(row["event_id"] for row in event_rows)
    twice = {event_id for event_id, n in per_event.items() if n > 1}
    events = {event_id for event_id in per_event
              if not event_id.endswith(RETRACTED_SUFFIX) or event_id in accepted}
    letters = {row["instance_id"] for row in letter_rows}

    problems = []
    if twice:
        problems.append(f"{len(twice)} events archived more than once even with FINAL: {_sample(twice)}")
    both = events & letters
    if both:
        problems.append(f"{len(both)} submissions both archived and dead-lettered: {_sample(both)}")
    missing = accepted - events - letters
    if missing:
        problems.append(f"{len(missing)} accepted (201) submissions neither archived nor dead-lettered: "
                        f"{_sample(missing)}")
    extra = (events | letters) - accepted
    if extra:
        problems.append(f"{len(extra)} archived or dead-lettered ids the intake never accepted: {_sample(extra)}")
    if content_hashes is not None:
        wrong = {row["event_id"] for row in event_rows
                 if row["event_id"] in content_hashes and row["content_hash"] != content_hashes[row["event_id"]]}
        if wrong:
            problems.append(f"{len(wrong)} events archived with other answers than those accepted: {_sample(wrong)}")
    assert not problems, (f"bookkeeping of {len(accepted)} accepted submissions against {len(events)} archived "
                          f"events and {len(letters)} dead letters:\n  " + "\n  ".join(problems))
