"""Apache Kafka from the project's own files: a KRaft cluster of 1 or 3 local JVMs.

Used by ``pacing broker --kind kafka``, ``make kafka`` and the Kafka tests (``make test-kafka``).
Apache Kafka comes from Maven Central: ``infra/kafka/pom.xml`` pins the release, and
:func:`ensure_kafka_lib` copies the broker, Kafka's command-line tools and a log4j2 binding into
``infra/kafka/.cache/lib/`` (ignored by git). Maven runs only when that folder is missing or the
pom changed, offline first (``-o``: everything already in ``~/.m2``), quietly (``-q -B``).

Each node is a combined broker + controller on loopback ports, with a controller quorum of all
nodes and a small heap (:data:`DEFAULT_HEAP`, so three nodes fit beside the tests on a 2-core
machine). The broker settings live in ONE file, ``infra/kafka/server.properties``, which
``infra/docker-compose.yml`` mounts too; :func:`broker_settings` adds only what depends on the
number of nodes. Like the Tansu launcher (:mod:`infra.broker`), every JVM runs in its own session
and dies with its parent (``PR_SET_PDEATHSIG``), so Ctrl-C, SIGTERM, a SIGKILL of the parent or a
crashed test run leaves no JVM behind.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from infra.broker import BrokerError, die_with_parent, free_port

log = logging.getLogger(__name__)

KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
"""``infra/kafka/``: the pom, the shared broker settings and the log4j2 configurations."""
POM = KAFKA_DIR / "pom.xml"
SERVER_PROPERTIES = KAFKA_DIR / "server.properties"
BROKER_LOG4J = KAFKA_DIR / "log4j2.properties"
TOOLS_LOG4J = KAFKA_DIR / "tools-log4j2.properties"

DEFAULT_HEAP = os.environ.get("PACING_KAFKA_HEAP", "384m")
"""-Xms/-Xmx of one node. 384 MB holds the tests' few hundred small partitions with room to spare;
a node's resident size is then about 0.6 GB (heap + metaspace + code cache + thread stacks)."""

JVM_OPTIONS = (
    # Kafka's own defaults (kafka-run-class.sh), for a small heap.
    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
    # A node that cannot allocate dies (and the launcher sees it) instead of limping on.
    "-XX:+ExitOnOutOfMemoryError",
)
FAST_START_OPTIONS = (
    # C1 only: a node is ready in about half the time and the JIT does not compete with the tests
    # for the two cores; peak throughput is lower, so benchmarks pass fast_start=False.
    "-XX:TieredStopAtLevel=1",
)

_LIB_STAMP = ".pom-sha256"
_PORT_ATTEMPTS = 3
_BROKER_MAIN = "kafka.Kafka"
_STORAGE_TOOL = "kafka.tools.StorageTool"


class KafkaUnavailable(BrokerError):
    """Apache Kafka cannot run here: no Java, no Maven and no cache, or Maven failed."""


def cache_dir() -> Path:
    """Where the jars go: ``$PACING_KAFKA_CACHE`` or ``infra/kafka/.cache``."""
    return Path(os.environ.get("PACING_KAFKA_CACHE") or KAFKA_DIR / ".cache")


def kafka_version() -> str:
    """The Kafka release pinned in ``infra/kafka/pom.xml`` (``<kafka.version>``)."""
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", POM.read_text())
    if not match:
        raise KafkaUnavailable(f"{POM} has no <kafka.version>")
    return match.group(1)


def java_executable() -> str | None:
    """``$JAVA_HOME/bin/java`` if set, else ``java`` on PATH; None without Java."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def _pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def _lib_is_current(lib: Path) -> bool:
    stamp = lib / _LIB_STAMP
    return stamp.is_file() and stamp.read_text().strip() == _pom_digest()


def kafka_unavailable_reason() -> str | None:
    """Why Apache Kafka cannot be started here (a skip reason for tests), or None if it can.

    Needs Java, and either jars resolved for the current pom or Maven to resolve them.
    """
    if java_executable() is None:
        return "Apache Kafka needs Java: no java on PATH (nor in $JAVA_HOME)"
    if not _lib_is_current(cache_dir() / "lib") and shutil.which("mvn") is None:
        return f"Apache Kafka needs Maven to resolve {POM.relative_to(KAFKA_DIR.parent.parent)}: no mvn on PATH"
    return None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (one Maven run at a time, across processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_kafka_lib(quiet: bool = True) -> Path:
    """The folder of Kafka's jars for the current pom, resolved with Maven if missing or stale.

    Maven writes into a fresh folder that replaces ``lib/`` only when complete, so an interrupted
    run never leaves a partial class path. Raises :class:`KafkaUnavailable` with Maven's output.
    """
    cache = cache_dir()
    lib = cache / "lib"
    if _lib_is_current(lib):
        return lib
    with _locked(cache / ".lock"):
        if _lib_is_current(lib):  # resolved by another process meanwhile
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaUnavailable("no mvn on PATH to resolve Apache Kafka (infra/kafka/pom.xml)")
        if not quiet:
            print(f"resolving Apache Kafka {kafka_version()} with Maven into {lib} ...", file=sys.stderr, flush=True)
        fresh = Path(tempfile.mkdtemp(prefix="lib.", dir=cache))
        try:
            command = [mvn, "-q", "-B", "-f", str(POM), "package", f"-Dkafka.lib.dir={fresh}"]
            # Offline first: after the first resolution everything is in ~/.m2.
            done = subprocess.run([*command[:3], "-o", *command[3:]], capture_output=True, text=True)
            if done.returncode != 0:
                done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0 or not any(fresh.glob("kafka_2.13-*.jar")):
                output = (done.stdout + done.stderr).strip().splitlines()
                raise KafkaUnavailable("Maven could not resolve Apache Kafka (infra/kafka/pom.xml): "
                                       + " | ".join(output[-15:]))
            (fresh / _LIB_STAMP).write_text(_pom_digest() + "\n")
            if lib.exists():
                old = cache / f"lib.old.{os.getpid()}"
                lib.rename(old)
                shutil.rmtree(old, ignore_errors=True)
            fresh.rename(lib)
        finally:
            shutil.rmtree(fresh, ignore_errors=True)
    return lib


def java_command(main_class: str, *args: str, heap: str = "256m", log4j: Path = TOOLS_LOG4J,
                 jvm_options: tuple[str, ...] = ()) -> list[str]:
    """``java … -cp <cache>/lib/* main_class args``: a Kafka tool or the broker from the cache.

    E.g. ``java_command("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", …)``
    for Kafka's console consumer (``ConsoleProducer``, ``consumer.group.ConsumerGroupCommand``
    likewise). Resolves the cache first if needed.
    """
    java = java_executable()
    if java is None:
        raise KafkaUnavailable("no java on PATH (nor in $JAVA_HOME)")
    lib = ensure_kafka_lib()
    return [java, f"-Xmx{heap}", *jvm_options, f"-Dlog4j2.configurationFile={log4j}",
            "-cp", str(lib / "*"), main_class, *args]


def read_properties(path: Path) -> dict[str, str]:
    """``key=value`` lines of a Java properties file (comments and blank lines skipped)."""
    settings: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, _, value = line.partition("=")
        settings[key.strip()] = value.strip()
    return settings


def broker_settings(nodes: int = 1, overrides: Mapping[str, object] | None = None) -> dict[str, str]:
    """The broker settings of a cluster of ``nodes``: ``infra/kafka/server.properties``, the
    replication of internal topics raised to the cluster's size, then ``overrides``.

    Internal topics get replication factor min(3, nodes) and min.insync.replicas min(2, nodes),
    so a 3-node cluster keeps its group offsets and transactions through the loss of a broker.
    """
    settings = read_properties(SERVER_PROPERTIES)
    replicas, min_isr = str(min(3, nodes)), str(min(2, nodes))
    for key in ("default.replication.factor", "offsets.topic.replication.factor",
                "transaction.state.log.replication.factor", "share.coordinator.state.topic.replication.factor"):
        settings[key] = replicas
    for key in ("transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr"):
        settings[key] = min_isr
    settings.update({key: _property_value(value) for key, value in (overrides or {}).items()})
    return settings


def _property_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def new_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` makes it: 16 random bytes, base64url."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka avoids ids that look like an option, too
            return cluster_id


class KafkaCluster:
    """``nodes`` Apache Kafka JVMs (KRaft, each broker + controller) on loopback; a context manager.

    ``port`` pins every port of every node (:func:`port_layout`); without it each is a free one.
    ``advertised_host`` adds an EXTERNAL listener per node, bound to ``listen_host`` and advertised
    as ``advertised_host`` (:attr:`external_servers`), for clients in other network namespaces or
    hosts, while :attr:`bootstrap_servers` stays on ``host`` (loopback) for local clients.

    Same interface as :class:`infra.broker.EmbeddedBroker` (``start``, ``stop``, ``running``,
    ``bootstrap_servers``), plus :meth:`kill` and :meth:`restart` of one node for failure tests.
    Data lives in ``data_dir`` (default: a temporary folder removed by :meth:`stop`); each node's
    log is ``<data_dir>/node-<id>/kafka.log``. The methods block: from async code call them with
    ``asyncio.to_thread``. Every JVM is started from one launcher thread that lives as long as the
    cluster, because ``PR_SET_PDEATHSIG`` fires when the *thread* that started a child ends.
    """

    def __init__(self, nodes: int = 1, host: str = "127.0.0.1", port: int | None = None,
                 data_dir: Path | None = None, heap: str = DEFAULT_HEAP, overrides: Mapping[str, object] | None = None,
                 fast_start: bool = True, advertised_host: str | None = None, listen_host: str = "0.0.0.0"):
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        if _is_wildcard(host):
            raise ValueError(f"host {host!r} is a wildcard address: clients cannot connect to it (listen there "
                             "with listen_host and give the address other hosts use as advertised_host)")
        if advertised_host is not None and _is_wildcard(advertised_host):
            raise ValueError(f"advertised_host {advertised_host!r} is a wildcard address: give the address other "
                             "hosts or network namespaces reach this machine at")
        self.nodes = nodes
        self.host = host
        self.advertised_host = advertised_host
        self.listen_host = listen_host
        self.base_port = port or None
        if self.base_port is not None:
            last = self.base_port + len(port_layout(nodes, self.base_port, advertised_host is not None)) - 1
            if not 1 <= self.base_port <= last <= 65535:
                raise ValueError(f"base port {self.base_port}: the cluster's ports run up to {last}, past 65535")
        self._choose_ports()
        self.heap = heap
        self.fast_start = fast_start
        self.settings = broker_settings(nodes, overrides)
        self.cluster_id = new_cluster_id()
        self._own_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="pacing-kafka-"))
        self._processes: list[subprocess.Popen[bytes] | None] = [None] * nodes
        self._launcher: concurrent.futures.ThreadPoolExecutor | None = None
        self._formatted = False

    def _choose_ports(self) -> None:
        """Every port of every node: from the base port (:func:`port_layout`), else free ones."""
        external = self.advertised_host is not None
        if self.base_port is not None:
            layout = port_layout(self.nodes, self.base_port, external)
        else:
            layout = {}
            for index in range(self.nodes):
                layout[("client", index)] = free_port(self.host)
                layout[("controller", index)] = free_port(self.host)
                if external:
                    layout[("external", index)] = free_port(self.listen_host)
        self.ports = [layout[("client", i)] for i in range(self.nodes)]
        self.controller_ports = [layout[("controller", i)] for i in range(self.nodes)]
        self.external_ports = [layout[("external", i)] for i in range(self.nodes)] if external else []

    # -- addresses and files ---------------------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """``host:port,…`` of every node's client listener, for clients on this machine."""
        return ",".join(f"{self.host}:{port}" for port in self.ports)

    @property
    def external_servers(self) -> str | None:
        """``advertised_host:port,…`` of every node's EXTERNAL listener, for clients on other hosts or in
        other network namespaces; None without ``advertised_host``."""
        if self.advertised_host is None:
            return None
        return ",".join(f"{self.advertised_host}:{port}" for port in self.external_ports)

    def node_address(self, index: int) -> str:
        """``host:port`` of node ``index`` (0-based) alone."""
        return f"{self.host}:{self.ports[index]}"

    def node_id(self, index: int) -> int:
        """The KRaft ``node.id`` of node ``index`` (index + 1)."""
        return index + 1

    def node_dir(self, index: int) -> Path:
        """Folder of node ``index``: its server.properties, kafka.log and data/."""
        return self.data_dir / f"node-{self.node_id(index)}"

    def log_path(self, index: int) -> Path:
        """The node's own log (stdout and stderr of its JVM)."""
        return self.node_dir(index) / "kafka.log"

    def log_tail(self, index: int, lines: int = 40) -> str:
        """The end of a node's log, for error messages."""
        path = self.log_path(index)
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def node_properties(self, index: int) -> dict[str, str]:
        """The full server.properties of node ``index``: shared settings plus its identity."""
        voters = ",".join(f"{self.node_id(i)}@{self.host}:{port}" for i, port in enumerate(self.controller_ports))
        listeners = [f"PLAINTEXT://{self.host}:{self.ports[index]}",
                     f"CONTROLLER://{self.host}:{self.controller_ports[index]}"]
        advertised = [f"PLAINTEXT://{self.host}:{self.ports[index]}"]
        extra: dict[str, str] = {}
        if self.advertised_host is not None:
            # A second listener for other hosts and namespaces; replication and the controllers stay
            # on the local one (inter.broker.listener.name=PLAINTEXT in server.properties).
            listeners.append(f"EXTERNAL://{_bracketed(self.listen_host)}:{self.external_ports[index]}")
            advertised.append(f"EXTERNAL://{_bracketed(self.advertised_host)}:{self.external_ports[index]}")
            protocols = self.settings.get("listener.security.protocol.map", "")
            extra["listener.security.protocol.map"] = ",".join(filter(None, [protocols, "EXTERNAL:PLAINTEXT"]))
        return {
            **self.settings,
            **extra,
            "node.id": str(self.node_id(index)),
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "controller.quorum.voters": voters,
            "log.dirs": str(self.node_dir(index) / "data"),
        }

    def _write_properties(self, index: int) -> Path:
        path = self.node_dir(index) / "server.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{key}={value}\n" for key, value in self.node_properties(index).items()))
        return path

    # -- life cycle ------------------------------------------------------------------------

    def start(self, timeout_s: float = 90.0) -> str:
        """Format storage (first start), start every node and block until each one is registered
        with the controller quorum and answers metadata; returns the bootstrap address."""
        if java_executable() is None:
            raise KafkaUnavailable("no java on PATH (nor in $JAVA_HOME)")
        ensure_kafka_lib()
        self._launcher = self._launcher or concurrent.futures.ThreadPoolExecutor(1, "kafka-launcher")
        try:
            for attempt in range(1, _PORT_ATTEMPTS + 1):
                if not self._formatted:
                    self._format(timeout_s)
                for index in range(self.nodes):
                    self._launch(index)
                try:
                    asyncio.run(self._await_brokers(self.bootstrap_servers, set(range(self.nodes)), timeout_s))
                    break
                except BrokerError:
                    if attempt == _PORT_ATTEMPTS or self.base_port is not None or not self._lost_a_port_race():
                        raise
                    log.warning("a port chosen for Kafka was taken before its node bound it; new ports, new storage")
                    self._start_afresh()
        except BaseException:
            self.stop()
            raise
        log.info("Apache Kafka %s ready at %s (%d node(s), data in %s)", kafka_version(), self.bootstrap_servers,
                 self.nodes, self.data_dir)
        return self.bootstrap_servers

    def _lost_a_port_race(self) -> bool:
        """Whether a node died because its port was taken (chosen free, then taken by another process
        -- say, as the local port of an outgoing connection -- before the JVM bound it)."""
        return any(not self.alive(i) and self.log_path(i).exists()
                   and "Address already in use" in self.log_path(i).read_text(errors="replace")
                   for i in range(self.nodes))

    def _start_afresh(self) -> None:
        """Kill every node, forget its storage and logs, and choose new ports for another attempt
        (only ever with free ports: pinned ones would be taken again)."""
        for index in range(self.nodes):
            self.kill(index)
            shutil.rmtree(self.node_dir(index), ignore_errors=True)
        self._choose_ports()
        self._formatted = False

    def _format(self, timeout_s: float) -> None:
        """``kafka-storage format`` of every node with the cluster id, run side by side."""
        formats = []
        for index in range(self.nodes):
            properties = self._write_properties(index)
            command = java_command(_STORAGE_TOOL, "format", "--cluster-id", self.cluster_id,
                                   "--config", str(properties), "--ignore-formatted",
                                   jvm_options=FAST_START_OPTIONS)
            formats.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL))
        for index, process in enumerate(formats):
            try:
                output, _ = process.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
            if process.returncode != 0:
                raise BrokerError(f"kafka-storage format of node {self.node_id(index)} failed "
                                  f"({process.returncode}): {output.decode(errors='replace').strip()}")
        self._formatted = True

    def _command(self, index: int) -> list[str]:
        options = (f"-Xms{self.heap}", *JVM_OPTIONS, *(FAST_START_OPTIONS if self.fast_start else ()),
                   f"-Dkafka.logs.dir={self.node_dir(index)}")
        command = java_command(_BROKER_MAIN, str(self.node_dir(index) / "server.properties"), heap=self.heap,
                               log4j=BROKER_LOG4J, jvm_options=options)
        return command

    def _launch(self, index: int) -> None:
        """Start node ``index``'s JVM (from the launcher thread, see the class docstring)."""
        if self._processes[index] is not None and self._processes[index].poll() is None:
            return
        assert self._launcher is not None
        self._write_properties(index)
        command = self._command(index)

        def popen() -> subprocess.Popen[bytes]:
            with open(self.log_path(index), "ab") as out:
                return subprocess.Popen(
                    command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=self.node_dir(index),
                    # Own session: a terminal's Ctrl-C reaches us, and we stop the nodes.
                    start_new_session=True, preexec_fn=die_with_parent,
                )

        self._processes[index] = self._launcher.submit(popen).result()

    async def _await_brokers(self, bootstrap: str, indexes: set[int], timeout_s: float) -> None:
        """Return once the metadata from ``bootstrap`` lists every node in ``indexes``."""
        deadline = time.monotonic() + timeout_s
        wanted = {self.node_id(i) for i in indexes}
        last: object = "no answer"
        while time.monotonic() < deadline:
            for index in indexes:
                process = self._processes[index]
                if process is None or process.poll() is not None:
                    code = None if process is None else process.returncode
                    raise BrokerError(f"Kafka node {self.node_id(index)} exited ({code}); "
                                      f"{self.log_path(index)}:\n{self.log_tail(index)}")
            if not all([await _port_open(self.node_address(i)) for i in indexes]):
                await asyncio.sleep(0.2)  # a client would log every refused connection as an error
                continue
            client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            try:
                await client.bootstrap()
                metadata = await client.fetch_all_metadata()
                registered = {broker.nodeId for broker in metadata.brokers()}
                if wanted <= registered:
                    return
                last = f"registered brokers {sorted(registered)}, waiting for {sorted(wanted)}"
            except (KafkaError, OSError) as exc:
                last = exc
            finally:
                await client.close()
            await asyncio.sleep(0.25)
        raise BrokerError(f"Kafka at {bootstrap} not ready within {timeout_s}s: {last}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM every node (a controlled shutdown), SIGKILL what is left after ``timeout_s``;
        removes the data folder if the cluster made it. Idempotent."""
        processes = [p for p in self._processes if p is not None and p.poll() is None]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes = [None] * self.nodes
        if self._launcher is not None:
            self._launcher.shutdown(wait=True)
            self._launcher = None
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._formatted = False

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (a broker and controller dying without warning) and reap it."""
        process = self._processes[index]
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait()

    def restart(self, index: int, timeout_s: float = 60.0) -> None:
        """Start node ``index`` again on its ports and data (after :meth:`kill` or a stop of the
        node) and block until it is registered again and answers metadata itself."""
        if self._launcher is None:
            raise BrokerError("the cluster is not started")
        self._launch(index)
        asyncio.run(self._await_brokers(self.node_address(index), {index}, timeout_s))

    def alive(self, index: int) -> bool:
        """True while node ``index``'s JVM runs."""
        process = self._processes[index]
        return process is not None and process.poll() is None

    def exit_code(self, index: int) -> int | None:
        """How node ``index``'s JVM ended (negative: killed by that signal); None while it runs or
        before it was started."""
        process = self._processes[index]
        return None if process is None else process.poll()

    def pid(self, index: int) -> int | None:
        """Process id of node ``index``'s JVM, if it runs."""
        process = self._processes[index]
        return process.pid if process is not None and process.poll() is None else None

    @property
    def running(self) -> bool:
        """True while every node's JVM is alive."""
        return all(self.alive(i) for i in range(self.nodes))

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def port_layout(nodes: int, base: int, external: bool = False) -> dict[tuple[str, int], int]:
    """Every port of a cluster pinned from one base port, as ``(listener, node index) -> port``.

    Client listeners take ``base … base+n-1`` (node 1 on ``base``, so the default 9092 serves the
    default ``kafka.bootstrap_servers``), the controllers the next ``n``, and the EXTERNAL listeners
    (only with an advertised address) the ``n`` after those. Three nodes from 9092: clients
    9092-9094, controllers 9095-9097, external 9098-9100.
    """
    kinds = ("client", "controller", "external") if external else ("client", "controller")
    return {(kind, index): base + block * nodes + index for block, kind in enumerate(kinds) for index in range(nodes)}


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "[::]", "")


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets for a listener URL (``[::1]``); other hosts as they are."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


async def _port_open(address: str) -> bool:
    """Whether ``host:port`` accepts TCP connections."""
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.open_connection(host, int(port))
    except OSError:
        return False
    writer.close()
    return True


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.kafka_broker resolve|check``: the Makefile's first step of ``make test-kafka``.

    ``resolve`` fetches the jars into the cache (exit 1 if Maven fails); without Java or Maven it
    only says so (exit 0: the Kafka tests then skip with that reason). ``check`` exits 1 then.
    """
    parser = argparse.ArgumentParser(prog="python -m infra.kafka_broker")
    parser.add_argument("action", choices=["resolve", "check"])
    args = parser.parse_args(argv)
    reason = kafka_unavailable_reason()
    if reason:
        print(f"{reason}; the Apache Kafka tests will be skipped", file=sys.stderr)
        return 1 if args.action == "check" else 0
    if args.action == "check":
        print(f"Apache Kafka {kafka_version()} can run here", file=sys.stderr)
        return 0
    try:
        lib = ensure_kafka_lib(quiet=False)
    except KafkaUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"Apache Kafka {kafka_version()}: {lib}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
