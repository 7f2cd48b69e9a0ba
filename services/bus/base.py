"""The bus port: what the intake needs of a bus, whichever one is wired in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from services.bus.codec import Message

# Returns once the event it was made for is durable; else raises PublishFailed.
Delivery = Callable[[], None]


class PublishFailed(Exception):
    """The event could not be made durable; the caller must not acknowledge the submission."""


class Publisher(Protocol):
    def publish(self, event: Message) -> None:
        """Return only once the event is durable (broker ack / local commit); else raise PublishFailed."""

    def close(self) -> None: ...


def send(publisher: Publisher, event: Message) -> Delivery:
    """Start making ``event`` durable; the caller may do other work, then calls the returned
    ``Delivery`` to wait for it. ``publish`` is ``send`` then wait, whatever the caller did between.

    A publisher with a ``send`` of its own (Kafka: the event is queued to the broker now and acked
    while the caller works) does it in two steps; any other (the embedded log, which commits in the
    caller's thread; the tests' fakes) publishes in full here and the wait returns at once.
    May raise PublishFailed here as well as from the wait."""
    own = getattr(publisher, "send", None)
    if own is not None:
        return own(event)
    publisher.publish(event)
    return _durable


def _durable() -> None:
    return None
