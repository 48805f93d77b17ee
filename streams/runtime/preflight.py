"""Pre-flight check before a command touches Kafka: is the cluster reachable at all?

Without it, a wrong or dead ``kafka.bootstrap_servers`` surfaces deep inside aiokafka or Faust
as a 30-line traceback (or, for an address that drops packets, as a hang of up to 40 s per
request). Every Kafka-using ``pacing`` command runs :func:`check_kafka` first, so the operator
gets one line naming the address and the reason, within ``kafka.connect_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Iterator

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.runtime.config import Settings
from streams.runtime.kafka import client_options

_PROBE_MAX_S = 3.0
"""At most this long to find out why a failed bootstrap failed (refused, DNS, …)."""


class KafkaUnreachable(RuntimeError):
    """No bootstrap server answered a metadata request; the message is one line for the operator."""

    def __init__(self, servers: str, cause: str) -> None:
        super().__init__(f"cannot reach Kafka at {servers} (kafka.bootstrap_servers): {cause}")
        self.servers = servers
        self.cause = cause


async def check_kafka(settings: Settings) -> None:
    """Ask the cluster for its metadata; raise :class:`KafkaUnreachable` unless it answers in time.

    The check takes at most ``kafka.connect_timeout_s`` (+0.5 s): a fast failure (refused, unknown
    host) is explained by TCP probes within what is left of it. aiokafka's own log lines are held
    back meanwhile: the exception's message replaces them (quoting the last one when it says more).
    A resolver that hangs can still hold the process's exit until the system's DNS timeout.
    """
    servers = settings.kafka.bootstrap_servers
    timeout_s = settings.kafka.connect_timeout_s
    started = time.monotonic()
    held: list[str] = []
    with _held_back("aiokafka", held):
        client = AIOKafkaClient(**client_options(settings), request_timeout_ms=int(timeout_s * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), timeout_s)
            return
        except TimeoutError:
            raise KafkaUnreachable(
                servers, f"no answer within {timeout_s:g} s (kafka.connect_timeout_s)"
            ) from None
        except (KafkaError, OSError):
            pass
        finally:
            await client.close()
    remaining = max(0.5, timeout_s - (time.monotonic() - started))
    raise KafkaUnreachable(servers, await _diagnose(servers, min(remaining, _PROBE_MAX_S), held))


async def _diagnose(servers: str, timeout_s: float, held: list[str]) -> str:
    """Why no server answered: a TCP connect to each tells refused / unknown host / silence apart."""
    said = _short(held[-1].split(": ", 1)[-1]) if held else "no metadata"
    addresses = [server.strip() for server in servers.split(",")]
    probes = []
    for address in addresses:
        host, _, port = address.rpartition(":")
        probes.append(_tcp_cause(host.strip("[]"), int(port), timeout_s))
    causes = []
    for address, cause in zip(addresses, await asyncio.gather(*probes), strict=True):
        if cause is None:  # the port answers TCP, but the conversation failed
            cause = _listener_cause(said)
        causes.append(cause if len(addresses) == 1 else f"{address}: {cause}")
    return "; ".join(causes)


def _listener_cause(said: str) -> str:
    """What a broker that answers TCP but not our client most likely means, naming the options to check."""
    lowered = said.lower()
    if "sasl" in lowered or "authentication" in lowered or "credentials" in lowered:
        return ("the broker refused the credentials (check kafka.sasl_username, kafka.sasl_password and "
                f"kafka.sasl_mechanism): {said}")
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return f"TLS failed (check kafka.ssl_cafile and kafka.security_protocol): {said}"
    return f"the port answers, but not as a Kafka broker ({said}; check kafka.security_protocol)"


async def _tcp_cause(host: str, port: int, timeout_s: float) -> str | None:
    """None if host:port accepts a TCP connection, else a few words saying why not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except socket.gaierror as exc:
        return f"host name not resolved ({exc.strerror})"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as exc:
        return (exc.strerror or errno.errorcode.get(exc.errno or 0, "") or str(exc)).lower()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


def _short(text: str) -> str:
    text = text.strip().splitlines()[0] if text.strip() else "?"
    return text if len(text) <= 160 else text[:157] + "..."


@contextlib.contextmanager
def _held_back(logger_name: str, held: list[str]) -> Iterator[None]:
    """Keep a library's log records (its sub-loggers' too) out of the log for the block's duration.

    Their messages are appended to ``held``; CRITICAL records still pass.
    """
    logging.getLogger(logger_name)
    loggers = [
        logger for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger) and (name == logger_name or name.startswith(logger_name + "."))
    ]

    def critical_only(record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            held.append(record.getMessage())
        return record.levelno >= logging.CRITICAL

    for logger in loggers:
        logger.addFilter(critical_only)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(critical_only)
