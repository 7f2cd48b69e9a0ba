"""The bus port: what the intake needs of a bus, whichever one is wired in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from services.bus.codec import Message

# Returns once the event it was made for is durable; else raises PublishFailed.
Delivery = Callable[[], None]


class PublishFailed(Exception):
    """The event could not be made durable; the caller must not acknowledge the submission."""


class Publisher(Protocol):
    def publish(self, event: Message) -> None:
        """Return only once the event is durable (broker ack / local commit); else raise PublishFailed."""

    def close(self) -> None: ...


@runtime_checkable
class Sender(Protocol):
    """A publisher that can publish in two steps (Kafka): ``send`` queues the event and returns the
    wait for it to be durable, so the caller can do other work while the broker acks. ``publish``
    is ``send`` then the wait. One that commits in the caller's thread (the embedded log) has no
    such second step, and is not a ``Sender``."""

    def send(self, event: Message) -> Delivery:
        """Queue ``event``; may raise PublishFailed here as well as from the returned wait."""
