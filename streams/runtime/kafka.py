"""Client options shared by every aiokafka client and the Faust app (TLS / SASL included)."""

from __future__ import annotations

import ssl
from typing import Any

from streams.runtime.config import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """A verifying TLS context when the security protocol asks for one."""
    if settings.kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return ssl.create_default_context(cafile=settings.kafka.ssl_cafile)


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka producers, consumers and admin clients."""
    kafka = settings.kafka
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
        "client_id": f"pacing-{settings.node_id}",
    }
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if kafka.sasl_mechanism:
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return options


def consumer_options(settings: Settings) -> dict[str, Any]:
    """:func:`client_options` for a consumer: also how long a fetch may wait for records."""
    return {**client_options(settings), "fetch_max_wait_ms": settings.kafka.fetch_max_wait_ms}
