"""An edit held for its original is never lost when releasing it fails: the original keeps its
201, the edit stays held, and the original's resend (Collect retrying) or the expiry sweep
releases it once the bus takes events again."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from services.bus.base import PublishFailed
from services.bus.codec import Message
from services.bus.embedded import EmbeddedLog
from services.clock import now_local, today_local
from services.domain.reference import Library, default_reference
from services.intake.ledger import SqliteLedger
from services.intake.refusals import BusUnavailable
from services.intake.service import IntakeService
from services.tools.submissions import fill_instance
from tests.conftest import visit_answers


class UnreachableWhileDown:
    """The real embedded log behind a switch: while ``down``, publishing fails as with a broker
    that does not ack (``PublishFailed``), before anything is written."""

    def __init__(self, bus: EmbeddedLog):
        self.bus, self.down = bus, False

    def publish(self, event: Message) -> None:
        if self.down:
            raise PublishFailed("broker unreachable")
        self.bus.publish(event)

    def close(self) -> None:
        self.bus.close()


@pytest.fixture
def intake(tmp_path: Path, forms_dir: Path):
    bus = EmbeddedLog(tmp_path / "bus.sqlite")
    ledger = SqliteLedger(tmp_path / "state")
    xform = (forms_dir / "visit_log.xml").read_bytes()
    version = re.search(rb'id="visit_log"[^>]*version="([^"]+)"', xform).group(1).decode()  # type: ignore[union-attr]
    publisher = UnreachableWhileDown(bus)
    service = IntakeService(default_reference(), ledger, publisher, known_forms={"visit_log": version},
                            held_timeout=timedelta(hours=1))
    yield service, publisher, ledger, xform
    ledger.close()
    bus.close()


def drop_after_first(bus: EmbeddedLog) -> list[Message]:
    """From now on the bus takes one more event and then fails (the broker drops right after);
    returns the list of events offered, and ``bus.publish = real`` restores it."""
    real, offered = bus.publish, []

    def publish(event: Message) -> None:
        offered.append(event)
        if len(offered) > 1:
            raise PublishFailed("broker unreachable")
        real(event)

    bus.publish = publish  # type: ignore[method-assign]
    return offered


def _published(publisher: UnreachableWhileDown) -> list[str]:
    return [row[0] for row in publisher.bus._db.execute("SELECT value FROM log ORDER BY position")]


def test_a_failed_release_keeps_the_edit_held_until_the_original_is_resent(intake, library: Library):
    service, publisher, ledger, xform = intake
    day = today_local() - timedelta(days=2)
    original = fill_instance(xform, visit_answers(library, day, total=10), "uuid:orig-1")
    edit = fill_instance(xform, visit_answers(library, day, total=12), "uuid:edit-1", deprecated_id="uuid:orig-1")

    assert service.submit(edit).kind == "held"  # the phone sent the edit first
    publisher.down = True
    with pytest.raises(BusUnavailable):
        service.submit(original)  # not durable: 503, Collect keeps it
    publisher.down = False
    # The original goes through; now the edit's release fails (the broker drops again right after).
    real_publish = publisher.bus.publish
    drop_after_first(publisher.bus)
    assert service.submit(original).kind == "new"  # durable: 201, whatever happens to the edit
    assert ledger.held(instance_id="uuid:edit-1"), "the edit must stay held when its release fails"
    assert ledger.lookup("uuid:edit-1") is None

    publisher.bus.publish = real_publish  # type: ignore[method-assign]
    assert service.submit(original).kind == "duplicate"  # Collect resends; the release is retried
    assert not ledger.held(instance_id="uuid:edit-1")
    assert ledger.lookup("uuid:edit-1") is not None
    published = _published(publisher)
    assert sum('"event_id":"uuid:edit-1"' in v.decode() for v in published) == 1
    assert sum('"event_id":"uuid:orig-1"' in v.decode() for v in published) == 1


def test_the_expiry_sweep_releases_an_edit_whose_original_came(intake, library: Library):
    service, publisher, ledger, xform = intake
    day = today_local() - timedelta(days=2)
    original = fill_instance(xform, visit_answers(library, day, total=10), "uuid:orig-2")
    edit = fill_instance(xform, visit_answers(library, day, total=15), "uuid:edit-2", deprecated_id="uuid:orig-2")
    assert service.submit(edit).kind == "held"
    real_publish = publisher.bus.publish
    drop_after_first(publisher.bus)
    assert service.submit(original).kind == "new"
    publisher.bus.publish = real_publish  # type: ignore[method-assign]

    service._clock = lambda: now_local() + timedelta(hours=2)  # past the hold timeout
    service.expire_held()

    assert ledger.lookup("uuid:edit-2") is not None, "released as an edit, not sent to the dead letters"
    published = [v.decode() for v in _published(publisher)]
    assert not any('"event_type":"dead_letter"' in v for v in published)
    assert sum('"event_id":"uuid:edit-2"' in v for v in published) == 1
