"""The `logweave` command: broker, collectors, intake, demo, configuration check, replay, and the query
API with its clients (api, query, trace, tail) and a development PostgreSQL.

Each subcommand imports only what it needs, so `logweave collect files` never imports faust.
The worker itself runs as `faust -A app worker`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

import orjson

from core.errors import ConfigError, LogweaveError
from core.redact import install_log_redaction, mask_data, mask_text
from core.settings import Settings, load_settings
from core.startup import FATAL_AT_START, report


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(config_file=args.config, **overrides)


def cmd_broker(args: argparse.Namespace) -> int:
    from commands.broker import run_foreground

    return run_foreground(Path(args.data_dir), args.port, linger=args.linger)


def cmd_run(args: argparse.Namespace) -> int:
    """`make run`: the development pipeline, started in order, with a summary and progress lines."""
    import os

    from commands.dev_run import run
    from commands.dev_stack import Ports, apply_environment

    ports = Ports(broker=args.broker_port, worker=args.worker_port, api=args.api_port, postgres=args.postgres_port)
    try:
        apply_environment(Path(args.env_file) if args.env_file else None, ports)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--env-file: {exc}") from None
    if args.config:  # every part reads the same file, from the working directory below
        args.config = os.environ["LOGWEAVE_CONFIG"] = str(Path(args.config).resolve())
    workdir = Path(args.workdir).resolve()
    os.chdir(workdir)  # the parts' relative paths (var/...) are under the working directory
    return run(_settings(args), ports, workdir, args.verbose, args.progress_every)


def cmd_collect_files(args: argparse.Namespace) -> int:
    from collectors.files.service import run_file_collector

    overrides = {"collector": {"paths": args.path}} if args.path else {}
    settings = _settings(args, **overrides)
    asyncio.run(run_file_collector(settings))
    return 0


def cmd_collect_pods(args: argparse.Namespace) -> int:
    from collectors.pods.service import run_pod_collector

    asyncio.run(run_pod_collector(_settings(args)))
    return 0


def cmd_intake(args: argparse.Namespace) -> int:
    from collectors.intake.service import run_intake

    asyncio.run(run_intake(_settings(args)))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from core.topics import POSITIONS
    from kafka_io.heartbeat import ensure_heartbeat_topic
    from kafka_io.rules_topic import ensure_rules_topic
    from kafka_io.topic_admin import ensure_topics, prepare_worker_topics

    settings = _settings(args)

    async def prepare() -> None:
        await prepare_worker_topics(settings, timeout=args.timeout)
        await ensure_topics(settings.kafka, [settings.topic(POSITIONS)], timeout=args.timeout, compacted=True)
        await ensure_rules_topic(settings, timeout=args.timeout)  # live rules (docs/rules.md)
        await ensure_heartbeat_topic(settings, timeout=args.timeout)  # every component's figures

    asyncio.run(prepare())
    print(f"logweave prepare: Kafka at {mask_text(settings.kafka.brokers)} answers; pipeline topics exist", flush=True)
    if "postgres" in settings.sinks.enabled:
        from core.errors import RetriableError
        from sinks.postgres import prepare_store

        try:
            applied = asyncio.run(prepare_store(settings.sinks.postgres, args.timeout))
        except RetriableError as exc:
            raise ConfigError(f"sinks.postgres: {exc}") from None
        print(f"logweave prepare: PostgreSQL schema up to date (applied: {', '.join(applied) or 'none'})", flush=True)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from commands.demo import run_demo

    print(f"logweave demo: writing ~{args.rate:.0f} lines/s of CRI pod logs under {args.dir}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(Path(args.dir), args.rate, args.pods, args.duration, seed=args.seed))
    return 0


def masked(settings: Settings) -> dict[str, object]:
    """The effective configuration as plain data: secret settings and URL passwords shown as '********'."""
    data: dict[str, object] = mask_data(settings.model_dump(mode="json"))
    return data


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    from agents.parsers.chain import build_parsers
    from agents.routing import validate_rules

    try:
        validate_rules(settings.routing)
        build_parsers(settings.parse)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    sys.stdout.write(orjson.dumps(masked(settings), option=orjson.OPT_INDENT_2).decode() + "\n")
    print("configuration is valid", file=sys.stderr)
    return 0


def cmd_hash_token(args: argparse.Namespace) -> int:
    """Print the auth.token_hashes entry for a token read from stdin (never from the command line)."""
    from core.api_tokens import hash_token

    token = sys.stdin.readline().strip()
    if not token:
        raise ConfigError("hash-token reads the token from stdin; got an empty line")
    print(hash_token(token))
    return 0


def cmd_parse_test(args: argparse.Namespace) -> int:
    from commands.parse_test import parse_source, run_parse_test

    return run_parse_test(_settings(args).parse, parse_source(args.source), Path(args.file))


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 3600")
    return value


def cmd_rules(args: argparse.Namespace) -> int:
    from commands import rules

    settings, path = _settings(args), Path(args.file)
    if args.action == "check":
        print(f"rules version {rules.validated(settings, path).name()} is valid")
        return 0
    if args.action == "publish":
        print(f"published rules version {asyncio.run(rules.publish(settings, path, args.switch_after))}")
        return 0

    async def watch() -> None:
        import signal

        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await rules.watch(settings, path, stop, switch_after=args.switch_after)

    asyncio.run(watch())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    if bool(args.sink) == bool(args.deadletters):
        raise ConfigError("replay needs exactly one of --sink NAME or --deadletters")
    return asyncio.run(_replay(_settings(args), args))


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from commands import replay
    from commands.replay_range import parse_position
    from core.topics import DEADLETTER
    from kafka_io.connect import connect, started
    from kafka_io.range_reader import range_consumer

    start, end = parse_position("--from", args.from_), parse_position("--to", args.to or "latest")
    if args.sink:
        replay.check_sink(settings, args.sink)
    topic = replay.sink_topic_name(settings, args.sink) if args.sink else settings.topic(DEADLETTER)
    consumer = await connect(settings.kafka, lambda: started(range_consumer(settings), settings.kafka),
                             "reading " + topic)
    try:
        plan = await replay.plan_replay(settings, consumer, topic, start, end, args.partitions)
    finally:
        await consumer.stop()
    print(plan.describe(), flush=True)
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    if args.sink in replay.SINKS_NEEDING_STOPPED_DRAIN and not args.workers_stopped:
        await replay.wait_until_group_empty(settings, args.sink)
    began = time.monotonic()
    with tqdm(total=plan.records, unit="record", desc=f"replay {topic}", mininterval=0.5) as bar:
        if args.sink:
            lines = await replay.replay_sink(settings, args.sink, plan, bar.update, say=bar.write)
            summary = f"{lines} lines in {plan.records} records written to the {args.sink} sink"
        else:
            from commands.deadletter_replay import replay_dead_letters

            result = await replay_dead_letters(settings, plan, bar.update)
            skipped = ", ".join(f"{count} {why}" for why, count in result.skipped.items()) or "none"
            summary = f"{result.republished} dead-lettered lines re-published to logs.raw (skipped: {skipped})"
    print(f"{summary} in {time.monotonic() - began:.1f} s")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from commands.status import show_status

    if args.json and not args.once:
        raise ConfigError("--json goes with --once (one JSON document for a script)")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # the screen is the output
    return asyncio.run(show_status(_settings(args), args.once, args.json, args.refresh))


def cmd_api(args: argparse.Namespace) -> int:
    if args.hash_token:
        from query.auth import token_hash

        token = sys.stdin.readline().strip()
        if not token:
            raise ConfigError("--hash-token reads the token from standard input; none was given")
        print(token_hash(token))
        return 0
    from query.server import run_api

    run_api(_settings(args), args.host, args.port)
    return 0


def cmd_postgres(args: argparse.Namespace) -> int:
    from commands.local_postgres import LocalPostgres

    return LocalPostgres(Path(args.data_dir), args.port).run_foreground()


def _filters(args: argparse.Namespace) -> dict[str, str]:
    pairs = {"service": args.service, "level": args.level, "namespace": args.namespace, "pod": args.pod,
             "trace_id": getattr(args, "trace_id", None), "q": args.q, "from": getattr(args, "from_", None),
             "to": getattr(args, "to", None), "limit": getattr(args, "limit", None)}
    return {k: str(v) for k, v in pairs.items() if v is not None}


def cmd_query(args: argparse.Namespace) -> int:
    from commands.query_client import ApiClient, run_query

    asyncio.run(run_query(ApiClient(_settings(args), args.url), _filters(args), args.pages))
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from commands.query_client import ApiClient, run_trace

    asyncio.run(run_trace(ApiClient(_settings(args), args.url), args.trace))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from commands.query_client import ApiClient, run_tail

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a tail ends
        asyncio.run(run_tail(ApiClient(_settings(args), args.url), _filters(args)))
    return 0


def _add_filters(parser: argparse.ArgumentParser, window: bool) -> None:
    parser.add_argument("--url", help="query API (default: api.url, http://127.0.0.1:8081)")
    parser.add_argument("--service", help="service name(s), comma-separated")
    parser.add_argument("--level", help="level(s), comma-separated: trace, debug, info, warn, error, fatal")
    parser.add_argument("--namespace", help="namespace(s), comma-separated")
    parser.add_argument("--pod", help="pod name(s), comma-separated")
    parser.add_argument("--q", help="words that must all appear in the message")
    if window:
        parser.add_argument("--trace-id", dest="trace_id")
        parser.add_argument("--from", dest="from_", help="RFC 3339, epoch ms or a duration ago (default: 1h)")
        parser.add_argument("--to", help="same forms (default: now)")
        parser.add_argument("--limit", type=int, help="lines per page (default 100)")
        parser.add_argument("--pages", type=int, default=1, help="pages to follow (default 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logweave", description=__doc__)
    parser.add_argument("--config", help="YAML config file (default: $LOGWEAVE_CONFIG)")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    broker = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (development only)")
    broker.add_argument("--port", type=int, default=9092)
    broker.add_argument("--data-dir", default="var/broker")
    broker.add_argument("--linger", type=float, default=4.0,
                        help="seconds to wait after Ctrl-C/SIGTERM before stopping (clients leave first)")
    broker.set_defaults(func=cmd_broker)

    run = sub.add_parser("run", help="run the development pipeline (what `make run` does): broker, worker, "
                         "collector, intake, query API, demo logs")
    run.add_argument("--env-file", help="KEY=VALUE settings for every part (variables already set win)")
    run.add_argument("--workdir", default=".", help="directory whose var/ holds data, output and logs")
    run.add_argument("--broker-port", type=int, default=9092)
    run.add_argument("--worker-port", type=int, default=6066, help="the worker's stats page and API")
    run.add_argument("--api-port", type=int, default=8081, help="the query API")
    run.add_argument("--postgres-port", type=int, default=5433)
    run.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    run.add_argument("--verbose", action="store_true",
                     help="show every line of every part (faust's banners included), not only warnings and errors")
    run.set_defaults(func=cmd_run)

    collect = sub.add_parser("collect", help="run a collector").add_subparsers(dest="kind", required=True)
    files = collect.add_parser("files", help="tail log files (Kubernetes pod logs or any file)")
    files.add_argument("--path", action="append", help="glob of files to tail (repeatable)")
    files.set_defaults(func=cmd_collect_files)
    pods = collect.add_parser("pods", help="stream label-selected pods through the Kubernetes API")
    pods.set_defaults(func=cmd_collect_pods)

    intake = sub.add_parser("intake", help="accept pushed logs (HTTP, Fluent forward, OTLP) into logs.raw")
    intake.set_defaults(func=cmd_intake)

    prepare = sub.add_parser("prepare", help="wait for Kafka and create the pipeline topics")
    prepare.add_argument("--timeout", type=float, default=60.0)
    prepare.set_defaults(func=cmd_prepare)

    demo = sub.add_parser("demo", help="write demo CRI pod logs with trace ids")
    demo.add_argument("--dir", default="var/demo/pods")
    demo.add_argument("--rate", type=float, default=200.0, help="lines per second")
    demo.add_argument("--pods", type=int, default=10)
    demo.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    demo.add_argument("--seed", type=int, default=None,
                      help="random seed for trace ids (default: a new one per start, so ids never repeat)")
    demo.set_defaults(func=cmd_demo)

    replay = sub.add_parser("replay", help="re-drive a sink from its Kafka topic, or dead letters into the pipeline")
    what = replay.add_mutually_exclusive_group()
    what.add_argument("--sink", help="sink to re-drive from its topic sink.<name>")
    what.add_argument("--deadletters", action="store_true", help="re-publish parse dead letters to logs.raw")
    replay.add_argument("--from", dest="from_", required=True,
                        help="earliest, latest, an offset, an RFC 3339 time or a duration ago (2h)")
    replay.add_argument("--to", help="same forms as --from (default: the end of the topic when the replay starts)")
    replay.add_argument("--partitions", help="comma-separated partitions (default: all)")
    replay.add_argument("--dry-run", action="store_true", help="show the offsets it would use and write nothing")
    replay.add_argument("--workers-stopped", action="store_true",
                        help="skip the empty-consumer-group check the s3 sink needs (every worker is stopped)")
    replay.set_defaults(func=cmd_replay)

    hash_token = sub.add_parser("hash-token", help="print the auth.token_hashes digest of a token read from stdin")
    hash_token.set_defaults(func=cmd_hash_token)

    api = sub.add_parser("api", help="serve the query API (stored lines, traces, live tail) and its web page")
    api.add_argument("--host", help="address to bind (default: api.host, 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (default: api.port, 8081)")
    api.add_argument("--hash-token", action="store_true",
                     help="print the sha256 digest of a token read from stdin, for auth.token_hashes, and exit "
                          "(the same as `logweave hash-token`)")
    api.set_defaults(func=cmd_api)

    query = sub.add_parser("query", help="search stored lines through the query API")
    _add_filters(query, window=True)
    query.set_defaults(func=cmd_query)
    trace = sub.add_parser("trace", help="every stored line of one trace, in time order")
    trace.add_argument("trace")
    trace.add_argument("--url", help="query API (default: api.url)")
    trace.set_defaults(func=cmd_trace)
    tail = sub.add_parser("tail", help="follow new lines matching the filters (Ctrl-C to stop)")
    _add_filters(tail, window=False)
    tail.set_defaults(func=cmd_tail)

    postgres = sub.add_parser("postgres", help="run a private PostgreSQL for development (make run)")
    postgres.add_argument("--data-dir", default="var/postgres")
    postgres.add_argument("--port", type=int, default=5433)
    postgres.set_defaults(func=cmd_postgres)

    parse_test = sub.add_parser("parse-test", help="show which parser reads each line of a sample file, and the record")
    parse_test.add_argument("--source", default="", help="the lines' source: namespace=..,container=..,path=..,"
                            "annotation=name[+name] (the pod annotation logweave.io/parser)")
    parse_test.add_argument("file", help="sample lines, one per line")
    parse_test.set_defaults(func=cmd_parse_test)

    rules = sub.add_parser("rules", help="validate live rules (parsers, routing, metrics from logs) and publish them "
                                         "to every worker")
    rules.add_argument("action", choices=["check", "publish", "watch"],
                       help="check: validate only; publish: once; watch: on SIGHUP and on every change of FILE")
    rules.add_argument("file", help="YAML with `parse` (parsers, sources, unmatched), `routing` (rules), "
                                    "`log_metrics` (rules, max_series) and/or `multiline` (rules)")
    rules.add_argument("--switch-after", type=_positive_seconds, default=10.0, metavar="SECONDS",
                       help="every worker applies a published version to chunks collected from this many seconds "
                            "after publishing on (default 10; docs/rules.md)")
    rules.set_defaults(func=cmd_rules)

    status = sub.add_parser("status", help="the whole pipeline live from the components' heartbeats "
                            "(stages, components, sinks, dead letters)")
    status.add_argument("--once", action="store_true", help="print once and exit")
    status.add_argument("--json", action="store_true", help="with --once: the view as one JSON document")
    status.add_argument("--refresh", type=float, default=2.0, help="seconds between screens (default 2)")
    status.set_defaults(func=cmd_status)

    check = sub.add_parser("check-config", help="validate and print the effective configuration")
    check.set_defaults(func=cmd_check_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    try:
        code: int = args.func(args)
        return code
    except FATAL_AT_START as exc:
        return report(exc)
    except LogweaveError as exc:  # any other set-up problem or unreachable service: one line, no traceback
        print(mask_text(f"logweave: {exc}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
