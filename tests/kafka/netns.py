"""A Linux network namespace joined to this one by a veth link: another host, as far as sockets go.

Used to show that a broker's advertised address serves clients that cannot use its loopback
(``pacing broker --advertised-host``), and by the soak to cut a worker off the network and heal it
again (the link down and up: established connections stall, as with a pulled cable). Needs root
and ``ip`` (iproute2); :func:`netns_unavailable_reason` says why not otherwise. The addresses are
private ones between our own namespaces (``10.231.<n>.1`` here, ``.2`` there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid


def netns_unavailable_reason() -> str | None:
    """Why network namespaces cannot be made here (a skip reason), or None."""
    if shutil.which("ip") is None:
        return "no `ip` (iproute2) on PATH to make network namespaces"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class NetworkNamespace:
    """``pk-<id>``, its end of a veth pair at ``address``; ours at ``host_address``. A context manager."""

    def __init__(self, subnet: int | None = None):
        tag = uuid.uuid4().hex[:6]
        self.name = f"pk-{tag}"
        self._outer, self._inner = f"pko{tag}", f"pki{tag}"
        subnet = subnet if subnet is not None else int(tag[:2], 16)
        self.host_address = f"10.231.{subnet}.1"
        self.address = f"10.231.{subnet}.2"
        self._made = False

    def create(self) -> NetworkNamespace:
        """Make the namespace, the link and the addresses, everything up."""
        _ip("netns", "add", self.name)
        self._made = True
        _ip("link", "add", self._outer, "type", "veth", "peer", "name", self._inner)
        _ip("link", "set", self._inner, "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self._outer)
        _ip("-n", self.name, "addr", "add", f"{self.address}/30", "dev", self._inner)
        _ip("link", "set", self._outer, "up")
        _ip("-n", self.name, "link", "set", self._inner, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        return self

    def command(self, *argv: str) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """Take the link down on both ends: packets are dropped, connections hang until healed."""
        _ip("link", "set", self._outer, "down")
        _ip("-n", self.name, "link", "set", self._inner, "down")

    def heal(self) -> None:
        """Bring the link up again."""
        _ip("link", "set", self._outer, "up")
        _ip("-n", self.name, "link", "set", self._inner, "up")

    def delete(self) -> None:
        """Remove the namespace (its end of the link goes with it, and so does ours). Idempotent."""
        if self._made:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
            subprocess.run(["ip", "link", "del", self._outer], capture_output=True)
            self._made = False

    def __enter__(self) -> NetworkNamespace:
        try:
            return self.create()
        except BaseException:
            self.delete()
            raise

    def __exit__(self, *exc: object) -> None:
        self.delete()
