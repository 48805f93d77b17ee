"""Keeps ``pacing broker --kind kafka`` running when one of its JVMs dies.

A dev cluster of three nodes should behave like a real one: a node that dies (``kill -9``, an
out-of-memory exit) leaves the other two serving, with the quorum and every replicated partition
still available. :class:`ClusterWatch` notices the death within half a second, says which node it
was (id, address, exit code, its log), and restarts it on request -- a line ``restart`` or
``restart N`` on standard input, or SIGUSR1 to the ``pacing broker`` process -- or by itself with
``--restart-dead`` (after 1 s, then doubling up to 60 s while the node keeps dying at once). The
command ends only on Ctrl-C/SIGTERM, or when every node is dead and nothing will restart them.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from typing import TextIO

from infra.broker import BrokerError
from infra.kafka_broker import KafkaCluster

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
STABLE_AFTER_S = 30.0
"""A restarted node that stays up this long is healthy again: its next death restarts after 1 s."""

ALL_DEAD = "all"


def describe_exit(code: int | None) -> str:
    """``exit code 1`` or ``killed by SIGKILL`` for a process's return code."""
    if code is None:
        return "not started"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class ClusterWatch:
    """Watches every node of a started :class:`KafkaCluster` from the command's main thread."""

    def __init__(self, cluster: KafkaCluster, auto_restart: bool = False, out: TextIO = sys.stderr):
        self.cluster = cluster
        self.auto_restart = auto_restart
        self.out = out
        self.requests: queue.SimpleQueue[int | str] = queue.SimpleQueue()
        self._dead: dict[int, float] = {}  # node index -> when the next automatic restart is due
        self._backoff = [FIRST_BACKOFF_S] * cluster.nodes
        self._started = [time.monotonic()] * cluster.nodes

    def say(self, text: str) -> None:
        """One line on the command's error stream (the ready line is on standard output)."""
        print(f"pacing broker: {text}", file=self.out, flush=True)

    def request_restart(self, node_id: int | None = None) -> None:
        """Restart ``node_id`` (1-based), or every dead node; thread- and signal-safe."""
        self.requests.put(ALL_DEAD if node_id is None else node_id)

    def read_commands(self, stream: TextIO) -> None:
        """Take ``restart`` / ``restart N`` lines from ``stream`` until it ends (a daemon thread).

        Not from a terminal this process runs in the background of (``pacing broker … &``): reading
        it would stop the whole command (SIGTTIN); SIGUSR1 still works there.
        """
        if not _may_read(stream):
            return

        def loop() -> None:
            for line in stream:
                words = line.split()
                if not words:
                    continue
                if words[0] == "restart" and len(words) == 1:
                    self.request_restart()
                elif words[0] == "restart" and len(words) == 2 and words[1].isdigit():
                    self.request_restart(int(words[1]))
                else:
                    self.say(f"unknown command {line.strip()!r}: type `restart` (every dead node) or `restart N`")

        threading.Thread(target=loop, name="broker-commands", daemon=True).start()

    def poll(self) -> bool:
        """Report new deaths and carry out restarts; False once every node is dead for good."""
        now = time.monotonic()
        for index in range(self.cluster.nodes):
            if index not in self._dead and not self.cluster.alive(index):
                self._report_death(index, now)
        while True:
            try:
                wanted = self.requests.get_nowait()
            except queue.Empty:
                break
            self._restart_requested(wanted)
        if self.auto_restart:
            for index, due in sorted(self._dead.items()):
                if due <= time.monotonic():
                    self._restart(index)
        return self.auto_restart or len(self._dead) < self.cluster.nodes

    def _report_death(self, index: int, now: float) -> None:
        cluster = self.cluster
        if now - self._started[index] >= STABLE_AFTER_S:
            self._backoff[index] = FIRST_BACKOFF_S
        self._dead[index] = now + self._backoff[index]
        living = [cluster.node_id(i) for i in range(cluster.nodes) if i not in self._dead]
        quorum = len(living) > cluster.nodes // 2
        if living:
            held = " (the controller quorum holds)" if quorum else "; the controller quorum is LOST till a node returns"
            state = f"node{'s' if len(living) > 1 else ''} {', '.join(map(str, living))} keep running{held}"
        else:
            state = "no node is left"
        if self.auto_restart:
            then = f"restarting it in {self._backoff[index]:g}s"
        else:
            then = (f"type `restart {cluster.node_id(index)}` here or send SIGUSR1 to pid {_own_pid()} "
                    "to restart it")
        self.say(f"Kafka node {cluster.node_id(index)} ({cluster.node_address(index)}) died: "
                 f"{describe_exit(cluster.exit_code(index))}; {state}; {then}; its log: {cluster.log_path(index)}")

    def _restart_requested(self, wanted: int | str) -> None:
        cluster = self.cluster
        if wanted == ALL_DEAD:
            indexes = sorted(self._dead)
            if not indexes:
                self.say("every node is running: nothing to restart")
        else:
            assert isinstance(wanted, int)
            if not 1 <= wanted <= cluster.nodes:
                self.say(f"no node {wanted}: the nodes are 1-{cluster.nodes}")
                return
            indexes = [wanted - 1]
            if wanted - 1 not in self._dead:
                self.say(f"node {wanted} is running: nothing to restart")
                return
        for index in indexes:
            self._restart(index)

    def _restart(self, index: int) -> None:
        cluster = self.cluster
        node_id = cluster.node_id(index)
        self.say(f"restarting Kafka node {node_id} ({cluster.node_address(index)}) on its ports and data")
        self._started[index] = time.monotonic()
        try:
            cluster.restart(index)
        except BrokerError as exc:
            self._backoff[index] = min(MAX_BACKOFF_S, self._backoff[index] * 2)
            self._dead[index] = time.monotonic() + self._backoff[index]
            self.say(f"Kafka node {node_id} did not come back: {str(exc).splitlines()[0]}"
                     + (f"; next attempt in {self._backoff[index]:g}s" if self.auto_restart else ""))
            return
        del self._dead[index]
        self.say(f"Kafka node {node_id} is back ({cluster.node_address(index)}, pid {cluster.pid(index)})")


def _own_pid() -> int:
    return os.getpid()


def _may_read(stream: TextIO) -> bool:
    """Whether reading ``stream`` is safe: not a terminal, or one whose foreground we are."""
    try:
        if not stream.isatty():
            return True
        return os.tcgetpgrp(stream.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False
