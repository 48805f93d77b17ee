"""The API row of ``make bench`` reads wrk's output right (units, failures), or says it could not."""

from __future__ import annotations

import pytest

from tests.benchmarks.api_load import parse_wrk

OUTPUT = """Running 19s test @ http://127.0.0.1:40001
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    3.01ms  97.63ms   95.12%
    Req/Sec     3.95k   412.21     4.51k    83.00%
  Latency Distribution
     50%  850.00us
     75%    1.90ms
     90%    3.30ms
     99%   18.40ms
  75012 requests in 19.00s, 61.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   3947.91
Transfer/sec:      3.22MB
"""


def test_wrk_figures_are_read_with_their_units_and_every_failure_counted() -> None:
    result = parse_wrk(OUTPUT)
    assert (result.requests_per_s, result.p50_ms, result.p99_ms) == (3947.91, 0.85, 18.4)
    assert (result.requests, result.non_2xx) == (75012, 4 + 2 + 1)
    assert parse_wrk(OUTPUT.replace("   18.40ms", "    1.20s")).p99_ms == 1200.0


def test_output_without_figures_is_an_error_not_a_zero() -> None:
    with pytest.raises(ValueError, match="no 99% latency"):
        parse_wrk(OUTPUT.replace("     99%   18.40ms\n", ""))
    with pytest.raises(ValueError, match="unexpected wrk output"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
