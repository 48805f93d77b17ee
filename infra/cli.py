"""The ``pacing`` command: one entry point, a subcommand per process or tool."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from infra.extras import MissingExtra
from streams.runtime.config import ConfigError, Settings, load_settings
from streams.runtime.preflight import KafkaUnreachable
from streams.runtime.topics import TopicMismatch

log = logging.getLogger("pacing")

_KAFKA_COMMANDS = frozenset({"worker", "sink", "produce", "feed", "alarms"})
"""Subcommands that need the cluster: each first checks that it answers (one line if not)."""


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "bootstrap_servers", None):
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap_servers}
    return load_settings(args.config, **overrides)


def _preflight(args: argparse.Namespace) -> None:
    """Fail fast, in one line, when Kafka cannot be reached (see :mod:`streams.runtime.preflight`)."""
    from streams.runtime.preflight import check_kafka

    asyncio.run(check_kafka(_settings(args)))


def cmd_broker(args: argparse.Namespace) -> int:
    from infra.broker import BrokerError, EmbeddedBroker

    broker: Any
    if args.kind == "kafka":
        from infra.kafka_broker import KafkaCluster, ensure_kafka_lib, kafka_unavailable_reason, kafka_version

        reason = kafka_unavailable_reason()
        if reason:
            print(f"pacing broker: {reason}", file=sys.stderr)
            return 1
        def interrupt(*_: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, interrupt)  # start() stops the nodes it started, then re-raises
        try:
            ensure_kafka_lib(quiet=False)
            broker = KafkaCluster(nodes=args.nodes, host=args.host, port=args.port, fast_start=False)
            broker.start()
        except BrokerError as exc:
            print(f"pacing broker: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        nodes = f"{args.nodes} node{'s' if args.nodes > 1 else ''}"
        print(f"Apache Kafka {kafka_version()} ready ({nodes}, data and logs in {broker.data_dir}): "
              f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
    else:
        broker = EmbeddedBroker(host=args.host, port=args.port)
        broker.start()
        print(f"embedded broker ready: KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if not broker.running:
                print("broker exited unexpectedly", file=sys.stderr)
                return 1
    finally:
        broker.stop()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.node.app import run_worker

    run_worker(_settings(args), loglevel=args.loglevel)
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from connectors.sink import run_sink

    run_sink(_settings(args))
    return 0


def cmd_emulator(args: argparse.Namespace) -> int:
    from infra.emulator import run_emulator

    settings = _settings(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_emulator(args.host, args.port, settings.sink.client_id,
                                 settings.sink.client_secret.get_secret_value()))
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from infra.console import produce_lines
    from streams.runtime.topics import topic_names

    settings = _settings(args)
    stats = topic_names(settings).stats
    topic = args.topic or stats
    batch = topic == stats and not args.single  # StatBatch records are a stats-topic format
    count = asyncio.run(produce_lines(settings, topic, args.key, sys.stdin, batch=batch))
    print(f"produced {count} record(s) to {topic}", file=sys.stderr)
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from infra.stat_feed import run_feed

    settings = _settings(args)
    with contextlib.suppress(KeyboardInterrupt):
        sent = asyncio.run(run_feed(settings, args.targets, args.interval, args.duration, args.json, args.seed,
                                    single=args.single))
        print(f"sent {sent} stat events", file=sys.stderr)
    return 0


def cmd_alarms(args: argparse.Namespace) -> int:
    from infra.console import tail_alarms

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(tail_alarms(_settings(args), args.from_beginning))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.simulation.command import main as simulate_main

    return simulate_main(args.extra)


def cmd_run(args: argparse.Namespace) -> int:
    from infra.run import run_pipeline

    return run_pipeline(args.config, duration_s=args.duration, targets=args.targets)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pacing", description="Agent pacing service on Kafka.")
    parser.add_argument("--config", help="TOML configuration file (default: $PACING_CONFIG)")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if name not in ("broker", "simulate"):
            p.add_argument("--bootstrap-servers", help="overrides kafka.bootstrap_servers")
        return p

    p = add("broker", cmd_broker, "run the embedded Tansu broker (or Apache Kafka: --kind kafka) until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092, help="client port (of the first node)")
    p.add_argument("--kind", choices=["tansu", "kafka"], default="tansu",
                   help="tansu: the embedded broker; kafka: Apache Kafka from infra/kafka (needs java and mvn)")
    p.add_argument("--nodes", type=int, choices=[1, 3], default=1, help="Apache Kafka nodes (KRaft quorum)")
    p = add("worker", cmd_worker, "run a pacing node (Faust worker)")
    p.add_argument("--loglevel", default="info")
    add("sink", cmd_sink, "run the bulk sink connector")
    p = add("emulator", cmd_emulator, "run the local Journey API emulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8089)
    p = add("produce", cmd_produce, "console producer: one record per stdin line (KEY<TAB>VALUE or --key); "
                                    "on the stats topic, JSON stat events arriving together are coalesced "
                                    "per target into StatBatch records")
    p.add_argument("--topic", help="default: the stats topic")
    p.add_argument("--key")
    p.add_argument("--single", action="store_true",
                   help="one record per line, as typed, also on the stats topic (no StatBatch records)")
    p = add("feed", cmd_feed, "produce a synthetic stat stream for a few dozen targets")
    p.add_argument("--targets", type=int, default=36)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between reports")
    p.add_argument("--duration", type=float, default=0, help="seconds; 0 = until Ctrl-C")
    p.add_argument("--json", action="store_true", help="JSON values instead of Avro single-object")
    p.add_argument("--single", action="store_true",
                   help="one StatEvent record per event instead of one StatBatch record per target and report")
    p.add_argument("--seed", type=int, default=7)
    p = add("alarms", cmd_alarms, "print alarm transitions as they arrive")
    p.add_argument("--from-beginning", action="store_true")
    p = add("simulate", cmd_simulate, "contact-centre simulation of the pacing engine (--matrix: the benchmark)")
    p.add_argument("--help-simulate", action="store_true", help="the simulator's own options")
    p = add("run", cmd_run, "run the whole pipeline on the embedded broker with live progress")
    p.add_argument("--duration", type=float, default=0, help="seconds; 0 = until Ctrl-C")
    p.add_argument("--targets", type=int, default=36)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pacing`` console script."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "simulate":  # its options belong to the simulator
        args.extra = ["--help"] if args.help_simulate else extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.config:
        import os

        os.environ["PACING_CONFIG"] = args.config  # child processes of `run` read the same file
    try:
        if args.command in _KAFKA_COMMANDS:
            _preflight(args)
        return args.handler(args)
    except (ConfigError, TopicMismatch) as exc:
        print(f"pacing {args.command}: {exc}", file=sys.stderr)
        return 2
    except (KafkaUnreachable, MissingExtra) as exc:
        print(f"pacing {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
