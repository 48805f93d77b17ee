"""A Linux network namespace joined to this host by a veth pair: a process in it can be cut off.

``ip netns add``, a veth pair with one end moved into the namespace, a /30 between the two ends
(addresses only between our own ends, nothing routed further). :meth:`NetworkNamespace.cut` brings
the host's end down — every connection of the processes inside stalls as on a real network
partition, without a reset — and :meth:`heal` brings it up again. Needs root (CAP_NET_ADMIN) and
the ``ip`` tool; :func:`netns_unavailable_reason` says why not where they are missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


def netns_unavailable_reason() -> str | None:
    """Why network namespaces cannot be built here, or None."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if os.geteuid() != 0:
        return "building network namespaces needs root (CAP_NET_ADMIN)"
    probe = f"pprobe{uuid.uuid4().hex[:6]}"
    made = _ip("netns", "add", probe)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    _ip("netns", "delete", probe)
    return None


class NetworkNamespace:
    """One namespace and its veth link to the host (see the module docstring)."""

    def __init__(self, subnet: int):
        tag = uuid.uuid4().hex[:6]
        self.name = f"pacing-{tag}"
        self.host_end = f"vh{tag}"
        self.inner_end = f"vn{tag}"
        # 10.213.<subnet>.0/30: .1 on the host's end, .2 inside
        self.host_address = f"10.213.{subnet}.1"
        self.inner_address = f"10.213.{subnet}.2"

    def create(self) -> None:
        """Build the namespace and bring the link up; RuntimeError naming the step that failed."""
        steps = [
            ("netns", "add", self.name),
            ("link", "add", self.host_end, "type", "veth", "peer", "name", self.inner_end),
            ("link", "set", self.inner_end, "netns", self.name),
            ("addr", "add", f"{self.host_address}/30", "dev", self.host_end),
            ("link", "set", self.host_end, "up"),
            ("-n", self.name, "addr", "add", f"{self.inner_address}/30", "dev", self.inner_end),
            ("-n", self.name, "link", "set", self.inner_end, "up"),
            ("-n", self.name, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            if done.returncode != 0:
                self.delete()
                raise RuntimeError(f"ip {' '.join(step)}: {done.stderr.strip()}")

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (``ip netns exec`` execs it: the pid is the command's)."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """Bring the link down: nothing passes either way until :meth:`heal`."""
        _ip("link", "set", self.host_end, "down").check_returncode()

    def heal(self) -> None:
        """Bring the link up again."""
        _ip("link", "set", self.host_end, "up").check_returncode()

    def delete(self) -> None:
        """Remove the link and the namespace (whatever was created of them)."""
        _ip("link", "delete", self.host_end)
        _ip("netns", "delete", self.name)
