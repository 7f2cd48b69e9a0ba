"""``thuvien``: the operator's command line (``python -m services.ops`` runs the same).

    thuvien topics [--apply]           the declared Kafka layout; --apply creates what is missing
    thuvien lag [--group G]            committed offset, log end and lag per topic partition
    thuvien deadletters list|redrive   dead letters, and re-submitting them through the intake
    thuvien replay …                   rebuild a fresh store from the log (Kafka, or the embedded log)
    thuvien central pull [--once]      pull submissions from ODK Central into the intake
    thuvien doctor                     check configuration and connectivity, one line per check

Settings come from the environment, as for every service (README, "Configuration"); the
command's own log lines go to stderr (LOG_FORMAT), at WARNING unless ``--log-level`` says otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from services.config import Settings

_RAW = argparse.RawDescriptionHelpFormatter


def _doc(module_doc: str | None) -> str:
    return (module_doc or "").strip()


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser(settings: Settings | None) -> argparse.ArgumentParser:
    from services.ops import replay as replay_module
    from services.tools import deadletters

    defaults = settings or Settings.model_construct()  # the defaults; the environment did not parse
    parser = argparse.ArgumentParser(prog="thuvien", description=__doc__, formatter_class=_RAW)
    parser.add_argument("--log-level", default="WARNING",
                        help="level of this command's own log lines on stderr (default: WARNING)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    topics = sub.add_parser(
        "topics", formatter_class=_RAW, help="print the declared Kafka topics; --apply creates the missing ones",
        description="Print the topic layout declared in services/bus/topics.py: name (with KAFKA_TOPIC_PREFIX), "
                    "partitions, replication (KAFKA_REPLICATION_FACTOR), retention and cleanup policy, including the "
                    "internal topics of the workers' consumer group (rotation.batches, named after the group).\n\n"
                    "--apply creates the missing topics on KAFKA_BOOTSTRAP_SERVERS (idempotent: existing topics are "
                    "left alone) and says, for each, whether it was created now or existed; it exits 1 if an "
                    "existing topic differs from the declaration.")
    topics.add_argument("--apply", action="store_true", help="create the missing topics on the broker")
    topics.add_argument("--group", default=defaults.processor_group,
                        help=f"consumer group whose internal topics to include (default: PROCESSOR_GROUP, "
                             f"{defaults.processor_group})")

    lag = sub.add_parser(
        "lag", formatter_class=_RAW, help="per topic partition: committed offset, log end, lag of the workers' group",
        description="For every partition of the topics the workers read: the consumer group's committed offset "
                    "('-' when it has none: it starts from the log start), the log end and the lag between them. "
                    "A backlog that does not shrink means the workers are stopped or stuck.")
    lag.add_argument("--group", default=defaults.processor_group,
                     help=f"consumer group (default: PROCESSOR_GROUP, {defaults.processor_group})")
    lag.add_argument("--all", action="store_true", help="also list empty partitions")

    dead = sub.add_parser(
        "deadletters", formatter_class=_RAW, help="list dead letters; re-drive them through the intake",
        description=_doc(deadletters.__doc__))
    deadletters.add_arguments(dead, defaults)

    replay = sub.add_parser(
        "replay", formatter_class=_RAW, help="rebuild a fresh store from the log through the same processors",
        description=_doc(replay_module.__doc__) + """

Distributed (default; BUS settings from the environment):
  thuvien replay --to-store http://u:p@clickhouse:8123/rebuilt --group replay-2025-11 --from-beginning
Embedded (the one-process stack's SQLite log; the stack may keep running):
  thuvien replay --embedded --log var/state/bus.sqlite --state-dir var/replay --to-store chdb://var/store2 \\
      --from-beginning""")
    replay.add_argument("--to-store", required=True, metavar="DSN",
                        help="the fresh store: chdb://NEW_PATH, or http(s)://USER:PASSWORD@HOST:8123/NEW_DB, an "
                             "empty database made beforehand (CREATE DATABASE NEW_DB); the migrations are applied")
    replay.add_argument("--group", metavar="NEW_GROUP",
                        help="distributed: a new consumer group (its internal topics and offsets start empty)")
    start = replay.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-beginning", action="store_true", help="from the start of the log")
    start.add_argument("--from-offset", type=int, metavar="N",
                       help="from offset N of every partition (embedded: from log position N)")
    start.add_argument("--from-date", type=_day, metavar="YYYY-MM-DD",
                       help="from the first event published on/after that day (Asia/Ho_Chi_Minh)")
    replay.add_argument("--embedded", action="store_true", help="replay the embedded SQLite log instead of Kafka")
    replay.add_argument("--log", type=Path, metavar="BUS_SQLITE",
                        help="embedded: the log to read (STATE_DIR/bus.sqlite of the stack)")
    replay.add_argument("--state-dir", type=Path, metavar="NEW_DIR",
                        help="embedded: a new directory for the processors' state")
    replay.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="distributed: give up if not caught up by then (default: wait)")
    replay.add_argument("--worker-log", type=Path, metavar="PATH",
                        help="distributed: the worker's log file (default: FAUST_DATA_DIR/replay-GROUP/worker.log)")

    central = sub.add_parser(
        "central", formatter_class=_RAW, help="pull submissions from ODK Central into the intake",
        description="thuvien central pull [--once] [options of python -m services.intake.central]\n\n"
                    "Runs services/intake/central.py's command: each form's new, edited and rejected submissions "
                    "from ODK Central into the intake (BUS=kafka: the Kafka intake; else its own embedded stack). "
                    "`thuvien central pull --help` lists its options (--config, --project, --form, --once, "
                    "--interval, --metrics-port).")
    central.add_argument("action", choices=["pull"], help="pull: poll ODK Central (every CENTRAL_POLL_INTERVAL_S, "
                                                          "or once with --once)")
    central.add_argument("args", nargs=argparse.REMAINDER, help="passed to services.intake.central")

    sub.add_parser(
        "doctor", formatter_class=_RAW, help="check configuration and connectivity; exit 1 if anything FAILs",
        description="One line per check, OK / WARN / FAIL, with what to do:\n"
                    "  settings   the environment parses\n"
                    "  forms      built in FORMS_DIR, or buildable from FORMS_SRC_DIR (Java)\n"
                    "  reference  the reference data loads\n"
                    "  accounts   ACCOUNTS_FILE (and an API keys file, where configured) readable\n"
                    "  state      STATE_DIR writable\n"
                    "  store      STORE_DSN reachable, migrations applied (chDB: stop the running stack first:\n"
                    "             one process owns a chDB directory)\n"
                    "  kafka      BUS=kafka: the broker answers; every declared topic exists with its partitions\n"
                    "Exit code 1 if any check FAILs.")
    return parser


def _topics(settings: Settings, args: argparse.Namespace) -> int:
    from services.ops import broker

    declared = broker.declared_topics(args.group)
    prefix = settings.kafka_topic_prefix
    width = max(len(t.named(prefix)) for t in declared)
    states = {s.name: s for s in broker.apply_topics(settings, args.group)} if args.apply else {}
    header = f"{'topic':<{width}}  partitions  replication  retention  cleanup" + ("  on the broker" if states else "")
    print(header)
    bad = 0
    for topic in declared:
        name = topic.named(prefix)
        line = (f"{name:<{width}}  {topic.partitions:>10}  {settings.kafka_replication_factor:>11}  "
                f"{broker.retention_text(topic.retention_ms):>9}  {topic.cleanup_policy:<7}")
        if states:
            state = states[name]
            problem = state.problem()
            bad += bool(problem)
            line += "  " + ("created" if state.created_now else "exists") + (f" — DIFFERS: {problem}" if problem
                                                                              else "")
        print(line.rstrip())
    if states:
        created = sum(s.created_now for s in states.values())
        print(f"{created} created, {len(states) - created} existing"
              + (f", {bad} differ from the declaration" if bad else "")
              + f" on {settings.kafka_bootstrap_servers}")
    return 1 if bad else 0


def _lag(settings: Settings, args: argparse.Namespace) -> int:
    from services.ops import broker

    try:
        rows = broker.group_lag(settings, args.group)
    except LookupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    shown = [r for r in rows if args.all or r.end > 0 or r.committed is not None]
    width = max([len("topic"), *(len(r.topic) for r in shown)])
    print(f"group {broker.group_id(settings, args.group)} on {settings.kafka_bootstrap_servers}")
    print(f"{'topic':<{width}}  partition  committed   log end       lag")
    for r in shown:
        committed = "-" if r.committed is None else str(r.committed)
        print(f"{r.topic:<{width}}  {r.partition:>9}  {committed:>9}  {r.end:>8}  {r.lag:>8}")
    by_topic: dict[str, int] = {}
    for r in rows:
        by_topic[r.topic] = by_topic.get(r.topic, 0) + r.lag
    behind = {t: n for t, n in by_topic.items() if n}
    print(f"total lag: {sum(by_topic.values())}" + (" (" + ", ".join(f"{t} {n}" for t, n in behind.items()) + ")"
                                                    if behind else ""))
    return 0


def _replay(settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from services.ops import replay

    from_offset = 0 if args.from_beginning else args.from_offset
    if args.embedded:
        if args.log is None or args.state_dir is None:
            parser.error("replay --embedded needs --log and --state-dir")
        return replay.embedded_replay(settings, log_path=args.log, state_dir=args.state_dir, to_store=args.to_store,
                                      from_offset=from_offset, from_date=args.from_date)
    if not args.group:
        parser.error("replay needs --group NEW_GROUP (or --embedded)")
    return replay.distributed_replay(settings.model_copy(update={"bus": "kafka"}), to_store=args.to_store,
                                     group=args.group, from_offset=None if args.from_beginning else args.from_offset,
                                     from_date=args.from_date, worker_log=args.worker_log, timeout_s=args.timeout)


def main(argv: Sequence[str] | None = None) -> int:
    from services import logs

    try:
        settings: Settings | None = Settings.from_env()
        settings_error: Exception | None = None
    except Exception as exc:  # doctor reports it; every other command needs settings
        settings, settings_error = None, exc
    parser = build_parser(settings)
    args = parser.parse_args(argv)
    logs.configure(settings, level=args.log_level, log_format=None if settings else "text")

    if args.command == "doctor":
        from services.ops.doctor import doctor

        return doctor(settings, settings_error)
    if settings is None:
        print(f"error: the environment does not parse: {settings_error} (README, Configuration)", file=sys.stderr)
        return 2
    if args.command == "topics":
        return _topics(settings, args)
    if args.command == "lag":
        return _lag(settings, args)
    if args.command == "deadletters":
        from services.tools import deadletters

        return deadletters.run(args)
    if args.command == "replay":
        return _replay(settings, args, parser)
    if args.command == "central":
        from services.intake import central

        return central.main(args.args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
