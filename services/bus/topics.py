"""Kafka topic layout, declared once. Keys are ``library_id`` so one library's events stay in order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    retention_ms: int  # -1: keep forever (the log is the source of replays)
    cleanup_policy: str = "delete"
    purpose: str = ""

    def named(self, prefix: str) -> str:
        return f"{prefix}{self.name}"


VISIT_EVENTS = Topic("events.visit_logged", partitions=6, retention_ms=-1,
                     purpose="Validated visit-log events (one per submission version).")
DEAD_LETTERS = Topic("deadletters", partitions=1, retention_ms=-1,
                     purpose="Events a processor could not apply, with the reason.")

TOPICS: tuple[Topic, ...] = (VISIT_EVENTS, DEAD_LETTERS)
TOPIC_BY_EVENT_TYPE = {"visit_logged": VISIT_EVENTS}
