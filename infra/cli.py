"""The ``pacing`` command: one entry point, a subcommand per process or tool."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from infra.extras import MissingExtra
from streams.runtime.config import ConfigError, Settings, load_settings
from streams.runtime.preflight import KafkaUnreachable
from streams.runtime.topics import TopicMismatch

log = logging.getLogger("pacing")

_KAFKA_COMMANDS = frozenset({"worker", "sink", "produce", "feed", "alarms", "top"})
"""Subcommands that need the cluster: each first checks that it answers (one line if not)."""

_BOOTSTRAP_COMMANDS = _KAFKA_COMMANDS | {"broker"}
"""Subcommands ``--bootstrap-servers`` applies to: the clients connect there, ``broker`` listens there."""

_NO_CONFIG_COMMANDS = frozenset({"simulate"})
"""Subcommands that read no configuration (the simulator takes its scenario as options)."""

_QUIET_COMMANDS = frozenset({"alarms", "produce", "top"})
"""Console tools whose output is the point: the Kafka client's INFO lines are left out unless asked for."""

_LONG_RUNNING_COMMANDS = frozenset({"alarms", "broker", "emulator", "feed", "run", "sink", "top", "worker"})
"""Subcommands that run until stopped: SIGINT (Ctrl-C) and SIGTERM stop each alike (:func:`_stop_on_signals`)."""


def _settings(args: argparse.Namespace) -> Settings:
    """The settings of this run: command line > environment > configuration file > defaults."""
    command_line = {}
    if getattr(args, "bootstrap_servers", None):
        command_line["kafka"] = {"bootstrap_servers": args.bootstrap_servers}
    return load_settings(args.config, command_line=command_line)


def _preflight(args: argparse.Namespace) -> None:
    """Fail fast, in one line, when Kafka cannot be reached (see :mod:`streams.runtime.preflight`)."""
    from streams.runtime.preflight import check_kafka

    asyncio.run(check_kafka(_settings(args)))


def _stop_on_signals() -> None:
    """Make SIGINT and SIGTERM both stop this process the way Ctrl-C does, whatever the parent left.

    A shell starts background jobs (``cmd &``, ``nohup cmd &``) with SIGINT ignored and Python keeps
    it ignored, so such a command ran on after a SIGINT; restoring Python's handler (KeyboardInterrupt,
    which ``asyncio.run`` turns into cancelling its main task) makes Ctrl-C work again. SIGTERM would
    end the process at once without the commands' clean-up (consumers left, terminal in curses mode):
    it goes to whatever handles SIGINT when it arrives. Commands that set their own handlers (broker,
    sink, run, Faust's worker) replace these.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _as_sigint)


def _as_sigint(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handled as SIGINT: by the handler SIGINT has now (``asyncio.run``'s while it runs)."""
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        raise KeyboardInterrupt
    handler(signal.SIGINT, frame)


def _listen_address(args: argparse.Namespace) -> tuple[str, int]:
    """Where ``pacing broker`` listens: ``--host``/``--port``, else the first of ``kafka.bootstrap_servers``.

    So a broker started with the same ``--bootstrap-servers``, environment or file as the other
    commands is the one they connect to (by default 127.0.0.1:9092).
    """
    host, _, port = _settings(args).kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
    return (args.host or host), (args.port if args.port is not None else int(port))


def _broker_option_error(args: argparse.Namespace) -> str | None:
    """Why the address options of ``pacing broker`` do not fit together, naming the option; or None."""
    wildcard = ("0.0.0.0", "::", "[::]")
    if args.host in wildcard:
        return (f"--host {args.host}: clients cannot connect to a wildcard address; to listen on every interface "
                "use --listen-host with --advertised-host ADDR (the address other hosts use)")
    if args.advertised_host in wildcard:
        return f"--advertised-host {args.advertised_host}: give an address other hosts or namespaces can reach"
    if args.listen_host is not None and args.advertised_host is None:
        return "--listen-host applies with --advertised-host (it is where that address's listener binds)"
    if args.kind != "kafka" and (args.nodes != 1 or args.restart_dead):
        return f"{'--nodes' if args.nodes != 1 else '--restart-dead'} applies to --kind kafka only"
    return None


def cmd_broker(args: argparse.Namespace) -> int:
    from infra.broker import BrokerError, EmbeddedBroker

    host, port = _listen_address(args)
    problem = _broker_option_error(args)
    if problem:
        print(f"pacing broker: {problem}", file=sys.stderr)
        return 2
    listen_host = args.listen_host or "0.0.0.0"
    if args.kind == "kafka":
        return _run_kafka_cluster(args, host, port, listen_host)
    try:
        broker = EmbeddedBroker(host=host, port=port, advertised_host=args.advertised_host, listen_host=listen_host)
        broker.start()
    except BrokerError as exc:
        print(f"pacing broker: cannot serve {host}:{port}: {exc}", file=sys.stderr)
        return 1
    external = f"; other hosts: {broker.external_servers}" if broker.external_servers else ""
    print(f"embedded broker ready: KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}{external}", flush=True)
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


def _run_kafka_cluster(args: argparse.Namespace, host: str, port: int, listen_host: str) -> int:
    """``pacing broker --kind kafka``: start the nodes, then keep them running (:mod:`infra.cluster_watch`)."""
    from infra.broker import BrokerError
    from infra.cluster_watch import ClusterWatch
    from infra.kafka_broker import KafkaCluster, ensure_kafka_lib, kafka_unavailable_reason, kafka_version

    reason = kafka_unavailable_reason()
    if reason:
        print(f"pacing broker: {reason}", file=sys.stderr)
        return 1

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # start() stops the nodes it started, then re-raises
    try:
        broker = KafkaCluster(nodes=args.nodes, host=host, port=port, fast_start=False,
                              advertised_host=args.advertised_host, listen_host=listen_host)
    except ValueError as exc:
        print(f"pacing broker: --port {port}: {exc}", file=sys.stderr)
        return 2
    try:
        ensure_kafka_lib(quiet=False)
        broker.start()
    except BrokerError as exc:
        print(f"pacing broker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    nodes = f"{args.nodes} node{'s' if args.nodes > 1 else ''}"
    external = f"; other hosts: {broker.external_servers}" if broker.external_servers else ""
    print(f"Apache Kafka {kafka_version()} ready ({nodes}, data and logs in {broker.data_dir}): "
          f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap_servers}{external}", flush=True)
    for index in range(broker.nodes):
        print(f"node {broker.node_id(index)}: client {broker.node_address(index)}, controller "
              f"{broker.host}:{broker.controller_ports[index]}"
              + (f", external {broker.advertised_host}:{broker.external_ports[index]}" if external else "")
              + f", pid {broker.pid(index)}", flush=True)
    watch = ClusterWatch(broker, auto_restart=args.restart_dead)
    watch.read_commands(sys.stdin)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: watch.request_restart())
    try:
        while not stop.wait(0.5):
            if not watch.poll():
                watch.say("every Kafka node is dead; stopping (--restart-dead restarts them by itself)")
                return 1
    finally:
        broker.stop()
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.dev_broker import attach_to_worker
    from streams.node.app import run_worker

    run_worker(_settings(args), loglevel=args.log_level.lower(), dev_broker=attach_to_worker)
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from connectors.sink import run_sink
    from streams.dev_broker import attach_to_sink

    run_sink(_settings(args), dev_broker=attach_to_sink)
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


def cmd_top(args: argparse.Namespace) -> int:
    from infra.top import run_top

    return run_top(_settings(args), refresh_s=args.refresh)


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.simulation.command import main as simulate_main

    return simulate_main(args.extra)


def cmd_targets(args: argparse.Namespace) -> int:
    from infra.targets_command import ApiError, run_targets
    from streams.api.server import api_url

    if args.action in ("get", "set", "delete") and not args.target_id:
        print(f"pacing targets {args.action}: give the target id", file=sys.stderr)
        return 2
    if args.action == "set" and not args.file:
        print("pacing targets set: give the definition with --file FILE (- for stdin)", file=sys.stderr)
        return 2
    url = args.url or os.environ.get("PACING_API_URL") or api_url(_settings(args).api)
    try:
        return run_targets(args.action, args.target_id, url=url, token=args.token, as_json=args.json,
                           file=args.file, prefix=args.prefix, limit=args.limit, cafile=args.cafile)
    except (ApiError, OSError) as exc:
        print(f"pacing targets {args.action}: {exc}", file=sys.stderr)
        return 1


def cmd_run(args: argparse.Namespace) -> int:
    from infra.run import run_pipeline

    return run_pipeline(args.config, duration_s=args.duration, targets=args.targets)


def _common_options(parser: argparse.ArgumentParser, default: Any, *, config: bool = True,
                    bootstrap: bool = True) -> None:
    """The options the commands share, accepted before or after the subcommand's name.

    The subcommands' copies default to ``argparse.SUPPRESS`` so that a value typed before the
    subcommand survives; one typed after it wins.
    """
    if config:
        parser.add_argument("--config", metavar="FILE", default=default,
                            help="TOML configuration file (default: $PACING_CONFIG)")
    if bootstrap:
        parser.add_argument("--bootstrap-servers", metavar="HOST:PORT[,…]", default=default,
                            help="kafka.bootstrap_servers for this run; beats PACING_KAFKA__BOOTSTRAP_SERVERS, "
                                 "KAFKA_BOOTSTRAP_SERVERS and the file")
    parser.add_argument("--log-level", metavar="LEVEL", default=default,
                        help="DEBUG, INFO, WARNING, ERROR (default: INFO; WARNING for "
                             f"{', '.join(sorted(_QUIET_COMMANDS))})")


def _not_applicable(command: str, option: str) -> str | None:
    """Why a shared option does not apply to ``command``, or None if it does."""
    if option == "--bootstrap-servers" and command not in _BOOTSTRAP_COMMANDS:
        return ("it starts its own embedded broker" if command == "run" else "it uses no Kafka")
    if option == "--config" and command in _NO_CONFIG_COMMANDS:
        return "it reads no configuration (pacing simulate --help-simulate lists its options)"
    return None


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``pacing`` parser and its subcommands' parsers by name."""
    parser = argparse.ArgumentParser(
        prog="pacing", description="Agent pacing service on Kafka.", allow_abbrev=False,
        epilog="Options: command line > environment (PACING_<SECTION>__<OPTION>, KAFKA_BOOTSTRAP_SERVERS) > "
               "configuration file > defaults.",
    )
    _common_options(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        common = argparse.ArgumentParser(add_help=False)
        _common_options(common, argparse.SUPPRESS, config=name not in _NO_CONFIG_COMMANDS,
                        bootstrap=name in _BOOTSTRAP_COMMANDS)
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common],
                           allow_abbrev=False)
        p.set_defaults(handler=handler)
        commands[name] = p
        return p

    p = add("broker", cmd_broker, "run the embedded Tansu broker (or Apache Kafka: --kind kafka) until Ctrl-C; "
                                  "it listens on the first address of --bootstrap-servers / kafka.bootstrap_servers")
    p.add_argument("--host", help="address local clients connect to (default: from kafka.bootstrap_servers, "
                                  "127.0.0.1)")
    p.add_argument("--port", type=int, help="client port (default: from kafka.bootstrap_servers, 9092; 0 = any free "
                                            "ports); with --kind kafka the base of every port: clients PORT.., "
                                            "controllers PORT+NODES.., external PORT+2*NODES..")
    p.add_argument("--advertised-host", metavar="ADDR",
                   help="serve clients in other hosts or network namespaces too, at ADDR (Kafka: a second "
                        "listener beside the local one; Tansu: its one listener advertises ADDR)")
    p.add_argument("--listen-host", metavar="ADDR",
                   help="where the --advertised-host listener binds (default 0.0.0.0: every interface)")
    p.add_argument("--restart-dead", action="store_true",
                   help="--kind kafka: restart a node that died by itself (else: a line `restart [N]` on stdin, "
                        "or SIGUSR1)")
    p.add_argument("--kind", choices=["tansu", "kafka"], default="tansu",
                   help="tansu: the embedded broker; kafka: Apache Kafka from infra/kafka (needs java and mvn)")
    p.add_argument("--nodes", type=int, choices=[1, 3], default=1, help="Apache Kafka nodes (KRaft quorum)")
    p = add("worker", cmd_worker, "run a pacing node (Faust worker)")
    p.add_argument("--loglevel", dest="log_level", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # old name
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
    p = add("feed", cmd_feed, "stat events of simulated contact centres that make the offers the published "
                              "decisions allow")
    p.add_argument("--targets", type=int, default=5, help="simulated agent groups (cycling through 5 profiles)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between reports")
    p.add_argument("--duration", type=float, default=0, help="seconds; 0 = until Ctrl-C")
    p.add_argument("--json", action="store_true", help="JSON values instead of Avro single-object")
    p.add_argument("--single", action="store_true",
                   help="one StatEvent record per event instead of one StatBatch record per target and report")
    p.add_argument("--seed", type=int, default=7)
    p = add("alarms", cmd_alarms, "print alarm transitions as they arrive: one line each, local time")
    p.add_argument("--from-beginning", action="store_true")
    p = add("top", cmd_top, "live view of every target (agents, waiting, allowed offers, acceptance, abandonment, "
                            "service level, owner) and the raised alarms; q quits")
    p.add_argument("--refresh", type=float, default=1.0, help="seconds between redraws")
    p = add("simulate", cmd_simulate, "contact-centre simulation of the pacing engine (--matrix: the benchmark); "
                                      "reads no configuration and no Kafka")
    p.add_argument("--help-simulate", action="store_true", help="the simulator's own options")
    p = add("targets", cmd_targets, "a target's decision and definition through the REST API of any worker: "
                                    "get ID | list | set ID --file def.json | delete ID")
    p.add_argument("action", choices=["get", "list", "set", "delete"])
    p.add_argument("target_id", nargs="?", metavar="ID")
    p.add_argument("--file", help="set: the definition (TargetConfig JSON); - reads stdin")
    p.add_argument("--url", help="the API (default: $PACING_API_URL, else api.port on 127.0.0.1)")
    p.add_argument("--token", help="bearer token (default: $PACING_API_TOKEN); writes need one")
    p.add_argument("--cafile", help="PEM CA bundle to trust for an https:// URL")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    p.add_argument("--prefix", default="", help="list: only ids starting with this")
    p.add_argument("--limit", type=int, default=None, help="list: at most this many")
    p = add("run", cmd_run, "run the whole pipeline on its own embedded broker with live progress")
    p.add_argument("--duration", type=float, default=0, help="seconds; 0 = until Ctrl-C")
    p.add_argument("--targets", type=int, default=5, help="simulated agent groups the feed reports")
    return parser, commands


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line as the ``pacing`` command reads it; exits with a usage message naming a wrong option."""
    parser, commands = _parser()
    args, extra = parser.parse_known_args(argv)
    command = commands[args.command]
    given = [word.split("=", 1)[0] for word in extra if word.startswith("--")]
    if args.bootstrap_servers:
        given.append("--bootstrap-servers")
    if args.config:
        given.append("--config")
    for option in given:
        reason = _not_applicable(args.command, option)
        if reason:
            command.error(f"{option} does not apply to {args.command}: {reason}")
    if args.command == "simulate":  # the rest belongs to the simulator, which names what it does not know
        args.extra = ["--help"] if args.help_simulate else extra
    elif extra:
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.log_level is None:
        args.log_level = "WARNING" if args.command in _QUIET_COMMANDS else "INFO"
    if args.log_level.upper() not in logging.getLevelNamesMapping():
        command.error(f"--log-level {args.log_level}: not a level (DEBUG, INFO, WARNING, ERROR, CRITICAL)")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pacing`` console script."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.config:
        os.environ["PACING_CONFIG"] = args.config  # child processes of `run` read the same file
    if args.command in _LONG_RUNNING_COMMANDS:
        _stop_on_signals()
    try:
        if args.command in _KAFKA_COMMANDS:
            _preflight(args)
        return args.handler(args)
    except KeyboardInterrupt:  # stopped while starting up, before the command handles it
        return 130
    except (ConfigError, TopicMismatch) as exc:
        print(f"pacing {args.command}: {exc}", file=sys.stderr)
        return 2
    except (KafkaUnreachable, MissingExtra) as exc:
        print(f"pacing {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
