"""Schemathesis against a real worker's served OpenAPI document: no 5xx, no answer that breaks the contract.

A few hundred generated requests over every operation, valid ones (positive) and invalid ones
(negative: wrong types, out-of-range values, missing parameters), with a write token so that valid
definitions really go to Kafka. Checks: no server error, every status and content type documented,
every body and header as documented, and invalid input rejected with a 4xx.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.pipeline import Pipeline, stat_records
from tests.integration.test_api_cluster import start_api_workers
from tests.unit.api_doubles import WRITE_TOKEN

pytestmark = pytest.mark.integration

EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 25}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, negative_data_rejection]


@dataclass
class Tally:
    """Requests made, per operation and status."""

    calls: int = 0
    statuses: dict[str, set[int]] = field(default_factory=dict)


def fuzz(url: str, tally: Tally) -> None:
    """Every operation of the served document, positive and negative cases; raises on the first failure."""
    schema = schemathesis.openapi.from_url(f"{url}/v1/openapi.json")
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, examples in EXAMPLES.items():
            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(mode))
            def run(case: schemathesis.Case) -> None:
                headers = {"Authorization": f"Bearer {WRITE_TOKEN}"}
                response = case.call_and_validate(base_url=url, session=session, headers=headers, checks=CHECKS)
                tally.calls += 1
                tally.statuses.setdefault(case.operation.label, set()).add(response.status_code)

            run()


async def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_contract(
        pipeline: Pipeline, http: aiohttp.ClientSession) -> None:
    [url] = await start_api_workers(pipeline, 1)
    await pipeline.produce([record for n in range(5) for record in stat_records(f"vq-{n}", ready=2)])
    tally = Tally()
    await asyncio.to_thread(fuzz, url, tally)
    assert tally.calls >= 300, tally
    statuses = tally.statuses
    assert 202 in statuses["PUT /v1/targets/{target_id}/definition"], statuses  # valid definitions were written
    assert {200, 400} <= statuses["GET /v1/pacing/reactiveState"], statuses
    assert {200, 400} <= statuses["GET /v1/targets"], statuses
