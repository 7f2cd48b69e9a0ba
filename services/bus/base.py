"""The bus port: what the intake needs of a bus, whichever one is wired in."""

from __future__ import annotations

from typing import Protocol

from services.bus.codec import Message


class PublishFailed(Exception):
    """The event could not be made durable; the caller must not acknowledge the submission."""


class Publisher(Protocol):
    def publish(self, event: Message) -> None:
        """Return only once the event is durable (broker ack / local commit); else raise PublishFailed."""

    def close(self) -> None: ...
