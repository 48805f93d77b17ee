"""Self-monitoring of one process: GC pauses and frequency, resident memory against its limit.

Mirrors the seed's GcLatency / GcFrequency / HeapMemoryUsage options and alarms. Python's
garbage collector reports every collection through ``gc.callbacks``; the resident set size is
read from ``/proc/self/statm`` and compared with the cgroup memory limit when there is one
(a container's real ceiling), else with the machine's RAM, unless configured.
"""

from __future__ import annotations

import gc
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.runtime import alarms
from streams.runtime.alarms import AlarmBoard, AlarmMessage
from streams.runtime.config import MetricsSettings
from streams.runtime.metrics import ProcessMetrics

_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def memory_limit_bytes(configured_mb: int | None = None) -> int:
    """The memory ceiling of this process: configured, else cgroup limit, else physical RAM."""
    if configured_mb:
        return configured_mb * 1024 * 1024
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < ram:
            return int(text)
    return ram


def resident_bytes() -> int:
    """Resident set size of this process."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class HealthSample:
    """What one check observed."""

    max_gc_pause_ms: float
    full_collections_per_min: float
    memory_percent: float


class ProcessHealth:
    """Watches GC and memory; ``check()`` returns the alarm transitions to publish."""

    def __init__(self, settings: MetricsSettings, board: AlarmBoard, window_s: float = 60.0):
        self.settings = settings
        self.board = board
        self.window_s = window_s
        self.limit = memory_limit_bytes(settings.memory_limit_mb)
        self._pauses: deque[tuple[float, float, int]] = deque(maxlen=100_000)
        self._gc_started: float | None = None

    def install(self) -> None:
        """Start observing collections."""
        if self._on_gc not in gc.callbacks:
            gc.callbacks.append(self._on_gc)

    def uninstall(self) -> None:
        """Stop observing collections."""
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        elif self._gc_started is not None:
            self._pauses.append((time.monotonic(), (now - self._gc_started) * 1000, info.get("generation", 0)))
            self._gc_started = None

    def sample(self) -> HealthSample:
        """GC pauses and full collections within the window, and memory use now."""
        horizon = time.monotonic() - self.window_s
        while self._pauses and self._pauses[0][0] < horizon:
            self._pauses.popleft()
        max_pause = max((p for _, p, _ in self._pauses), default=0.0)
        full = sum(1 for _, _, generation in self._pauses if generation == 2)
        return HealthSample(max_pause, full * 60.0 / self.window_s, 100.0 * resident_bytes() / self.limit)

    def observe(self, metrics: ProcessMetrics) -> list[AlarmMessage]:
        """One health round of any process: record the sample's gauges, return the alarm transitions."""
        sample = self.sample()
        metrics.observe_health(sample.max_gc_pause_ms, sample.memory_percent)
        return self.check(sample)

    def check(self, sample: HealthSample | None = None) -> list[AlarmMessage]:
        """Raise or clear GcLatency, GcFrequency and HeapMemoryUsage against their thresholds."""
        sample = sample or self.sample()
        scope = "process"
        checks = (
            (alarms.GC_LATENCY, sample.max_gc_pause_ms, self.settings.gc_latency.threshold,
             "longest GC pause {:.0f} ms in the last minute (threshold {:.0f} ms)"),
            (alarms.GC_FREQUENCY, sample.full_collections_per_min, self.settings.gc_frequency.threshold,
             "{:.0f} full collections per minute (threshold {:.0f})"),
            (alarms.HEAP_MEMORY_USAGE, sample.memory_percent, self.settings.heap_memory_usage.threshold,
             "resident memory at {:.0f}% of the limit (threshold {:.0f}%)"),
        )
        messages = []
        for name, observed, threshold, text in checks:
            if observed > threshold:
                message = self.board.raise_alarm(name, scope, text.format(observed, threshold),
                                                 observed_value=observed, threshold=threshold)
            else:
                message = self.board.clear_alarm(name, scope, text.format(observed, threshold), observed)
            if message is not None:
                messages.append(message)
        return messages
