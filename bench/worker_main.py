"""``python -m bench.worker_main``: the faust worker (``services.processors.worker``) with
``BENCH_PARTITIONS`` partitions on every event topic and its tables' changelogs, for the scaling
table (1, 2 and 4 partitions). The declared layout (``services/bus/topics.py``) has 6; faust
needs a table's changelog to have as many partitions as its source topic, so the benchmark
patches the layout in this process before the worker module is imported. Nothing else changes.
"""

from __future__ import annotations

import dataclasses
import os

from services.bus import topics


def layout(partitions: int, group: str) -> tuple[topics.Topic, ...]:
    """The topics a run with ``partitions`` needs: every declared one, event topics and changelogs resized."""
    events = tuple(dataclasses.replace(t, partitions=partitions) for t in topics.EVENT_TOPICS.values())
    changelogs = tuple(dataclasses.replace(t, partitions=partitions) for t in topics.changelog_topics(group))
    return (*events, topics.DEAD_LETTERS, topics.REJECTIONS, *changelogs)


def _patch(partitions: int) -> None:
    topics.EVENT_PARTITIONS = partitions
    for event_type, topic in list(topics.EVENT_TOPICS.items()):
        topics.EVENT_TOPICS[event_type] = dataclasses.replace(topic, partitions=partitions)
    topics.VISIT_EVENTS = topics.EVENT_TOPICS["visit_logged"]
    topics.TOPIC_BY_EVENT_TYPE.update(topics.EVENT_TOPICS)
    topics.TOPICS = (*topics.EVENT_TOPICS.values(), topics.DEAD_LETTERS, topics.REJECTIONS)


def main() -> None:
    _patch(int(os.environ["BENCH_PARTITIONS"]))
    from services.processors import worker  # imported after the patch: it binds the layout's names

    worker.main([])


if __name__ == "__main__":
    main()
