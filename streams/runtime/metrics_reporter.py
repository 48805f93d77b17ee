"""The seed's metric reporters: a periodic snapshot of a process's metrics to the log, the
console, or the ``pacing.metrics`` topic (our stand-in for the seed's Message Server reporter).

Each reporter runs at its own ``logFrequency``; Prometheus scraping of ``/metrics`` is always on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from streams.runtime.config import Settings

log = logging.getLogger("pacing.metrics")

Publish = Callable[[bytes, bytes], Awaitable[None]]


def snapshot(registry: CollectorRegistry) -> dict[str, float]:
    """Every sample of the registry as ``name{label=value,…}`` → value (histogram buckets left out)."""
    return flatten(registry.collect())


def flatten(families: Iterable[Metric]) -> dict[str, float]:
    """Samples of metric families (from a registry or a scraped ``/metrics`` page) as one flat dict."""
    figures: dict[str, float] = {}
    for family in families:
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            figures[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return figures


def report(settings: Settings, component: str, registry: CollectorRegistry) -> dict[str, Any]:
    """The record every reporter emits."""
    return {"tenant": settings.tenant, "node": settings.node_id, "component": component,
            "timestamp": int(time.time() * 1000), "metrics": snapshot(registry)}


async def run_reporters(settings: Settings, component: str, registry: CollectorRegistry, publish: Publish) -> None:
    """Run every enabled reporter until cancelled."""
    reporters = settings.metrics.reporter
    tasks = []
    for name, reporter in reporters.items():
        if reporter.enabled:
            tasks.append(asyncio.create_task(
                _every(reporter.log_frequency, name, settings, component, registry, publish)))
    if tasks:
        await asyncio.gather(*tasks)


async def _every(period_s: float, kind: str, settings: Settings, component: str, registry: CollectorRegistry,
                 publish: Publish) -> None:
    while True:
        await asyncio.sleep(period_s)
        record = report(settings, component, registry)
        if kind == "messageServer":
            await publish(f"{component}:{settings.node_id}".encode(), json.dumps(record).encode())
        elif kind == "console":
            print(json.dumps(record), flush=True)
        else:
            log.info("metrics %s", json.dumps(record["metrics"], sort_keys=True))
