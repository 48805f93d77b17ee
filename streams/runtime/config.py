"""Cluster-level configuration: one TOML file plus environment overrides, validated at start-up.

Every process (worker, sink, emulator, simulator) reads the same settings, so every worker is
equivalent and needs only the connection to the cluster. Option names follow the Genesys Pacing
Server seed where one exists (``pacingEndpoint.targetEndpoint``, ``metrics.GcLatency.threshold``,
``base_auth_url``, ``base_service_url``); docs/operations.md lists the mapping.

Precedence (highest first): the command line (``pacing … --bootstrap-servers``, passed to
:func:`load_settings` as ``command_line``), then ``PACING_…`` environment variables (nested with
``__``, e.g. ``PACING_SINK__LINGER_MS=200``), then ``KAFKA_BOOTSTRAP_SERVERS``, then the file named
by ``--config`` or ``PACING_CONFIG``, then the defaults below. A wrong value — or an unknown option
name, from any of these — raises :class:`ConfigError` naming the option, and the process stops
before it touches Kafka.

Each layer is one of pydantic-settings' own sources, and pydantic-settings merges them (deeply:
an option from one layer keeps the other options of its section from the layers below). The
command line is an ``InitSettingsSource``, the environment ``EnvSettingsSource``,
``KAFKA_BOOTSTRAP_SERVERS`` another ``InitSettingsSource``, the file ``TomlConfigSettingsSource``,
and the defaults are the fields' own; a caller's ``overrides`` (tests, tools) are one more
``InitSettingsSource``, between the environment and ``KAFKA_BOOTSTRAP_SERVERS``.

Why :func:`load_settings` hands :class:`Settings` the sources of each load (``_build_sources``)
instead of declaring them in ``settings_customise_sources``: that hook is a classmethod, and the
file a command names, what was typed on its command line and a caller's overrides exist only for
the one load, so the hook could reach them only through a global (it did: a ``ContextVar``).
``_build_sources`` is the constructor argument with which pydantic-settings' own ``CliApp`` builds
settings from sources it made (pydantic-settings >= 2.13); ``tests/unit/runtime/test_config.py``
checks every layer's place. Not ``CliSettingsSource``: it would give ``pacing`` an option for every
setting, where the command line has one (``--bootstrap-servers``) and names what it does not know
(``infra/cli.py``).
"""

from __future__ import annotations

import os
import re
import socket
import ssl
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from schemas.models import ALGORITHMS, MEDIA_TYPES, describe_validation_error
from streams.runtime.fencing import FENCE_WINDOW_MS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "sec": 1, None: 1, "min": 60, "m": 60, "h": 3600}


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the option."""


def parse_duration(value: Any) -> float:
    """Seconds from a number or a seed-style duration string such as "30min", "10s", "500ms"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 30min, 10s, 500ms)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be a positive duration")
    return seconds


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class KafkaSettings(_Section):
    """Connection to the cluster and the topics' shape."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    stats_partitions: int = Field(12, ge=1, le=10_000)
    replication_factor: int = Field(1, ge=1)
    min_insync_replicas: int | None = Field(
        None, ge=1, description="min.insync.replicas of every topic the services create (unset: the broker default)"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    # Faust's default 60 s session and rebalance timeouts make a group join take ~30 s.
    session_timeout_s: float = Field(6.0, gt=0)
    rebalance_timeout_s: float = Field(6.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    broker_kind: Literal["auto", "tansu", "kafka"] = Field(
        "auto", description="which broker serves, decided once at start-up: kafka attaches no dev-broker "
        "workaround and asks nothing; tansu attaches them all; auto asks the cluster once and counts anything "
        "not recognised as Apache Kafka as tansu (streams/dev_broker)"
    )
    probe_end_offsets: bool | None = Field(
        None, description="confirm a table restore's end offsets by fetch (Tansu under-reports them); "
        "unset: only where the broker is not Apache Kafka"
    )
    topic_check_interval_s: float = Field(
        5.0, gt=0, le=3600, description="on the dev broker (not Apache Kafka): how often workers and sink "
        "check that their topics still exist"
    )
    fetch_max_wait_ms: int = Field(
        100, ge=0, le=30_000,
        description="longest a fetch waits for records (every consumer of ours; Faust's own is 1,500): a broker "
        "that does not answer a waiting fetch when records arrive (Tansu) delays each hop by up to this",
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, le=300, description="start-up gives up (one line, exit 1) if no bootstrap server answers by then"
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port…], got {value!r}")
        return value


class WorkerSettings(_Section):
    """The pacing nodes (Faust workers)."""

    app_id: str = "pacing-nodes"
    store: str = Field("memory://", pattern=r"^(memory|rocksdb)://")
    batch_max_events: int = Field(1000, ge=1, le=100_000)
    batch_within_s: float = Field(0.2, gt=0, le=10)
    keepalive_s: float = Field(
        30.0, gt=0, le=FENCE_WINDOW_MS / 2000,
        description="re-emit every decision at least this often; at most half the sink's fence window "
        "(streams/runtime/fencing.py), so a live owner's newest decision is always inside it and a "
        "fenced-out worker's older epoch is refused")
    stale_after_s: float = Field(300.0, gt=0, description="alarm TargetStale after this long without events")
    standby_replicas: int = Field(1, ge=0)
    decide_interval_s: float = Field(
        1.0, gt=0, le=10, description="targets with new statistics are decided (at most) once per this interval"
    )
    checkpoint_interval_s: float = Field(
        5.0, gt=0, le=60,
        description="an event's target state is written to the changelog and the event acknowledged at most this "
                    "long after it was taken (a crash replays up to this much; Kafka Streams commits every 30 s)",
    )
    publish_interval_s: float = Field(
        5.0, ge=0, le=60,
        description="a target's changed decision is published at most this often (the rest are coalesced into the "
                    "next one); a stop (inactive, no offers, no reactive admission) goes out at once; 0 = every change",
    )
    max_pending_events: int = Field(
        50_000, ge=1, le=10_000_000, description="flush early when this many events wait for the next decision tick"
    )
    max_attempts: int = Field(3, ge=1, le=100, description="an event whose processing fails this often goes to the DLQ")
    send_timeout_s: float = Field(30.0, gt=0, le=600, description="wait this long for the broker to acknowledge writes")
    web_port: int = Field(6066, ge=0, le=65535, description="/metrics, /healthz, /readyz; 0 = off")
    data_dir: str = "var/worker"
    static_membership: bool = Field(
        False, description="join the group as a static member (group.instance.id = node_id): a worker restarted "
                            "within kafka.session_timeout_s gets its partitions back without a rebalance; a "
                            "stopped one keeps them until the session times out")
    fast_drain: bool = Field(
        True, description="hand fetched records to the agent inline (streams/node/faust_compat.py) instead of "
                          "Faust's four tasks per record; off = stock Faust (for A/B measurements)")


class TargetDefaults(_Section):
    """Defaults for every pacing target; pacing.targets overrides them per target."""

    supported_media_types: tuple[str, ...] = ("webchat",)
    service_level_percentage: float = Field(0.8, ge=0, le=1)
    service_level_duration_ms: int = Field(20_000, ge=0)
    short_abandon_threshold_s: int = Field(10, ge=0)
    algorithm: str | None = None
    optimization_target: Literal["ABANDONMENT_RATE", "BUSY_FACTOR"] = "ABANDONMENT_RATE"
    optimization_goal: float = Field(3.0, gt=0, lt=100)
    proactive_ratio: float = Field(1.0, ge=0, le=1)
    acceptance_prior: float = Field(0.3, gt=0, le=1)
    refresh_period_s: float = Field(10.0, gt=0, le=3600, description="seed refreshPeriod: offers are per period")
    rate_window_s: float = Field(900.0, ge=60, le=1800, description="rolling window of rates from counters")
    count_short_abandons: bool = Field(
        True, description="the abandonment goal counts every abandon (false: only those longer than "
                          "short_abandon_threshold_s, the Genesys figure, which hides quick losses)")
    auto_predictive_occupancy: float = Field(
        0.95, ge=0, le=1, description="AUTO uses PREDICTIVE_B above 30 agents only where Erlang A at the goal keeps "
                                      "the group at least this busy (0: the plain size split; 1: never)")
    reactive_first: bool = Field(
        True, description="in the dual forms reactive visitors come first: no proactive offers while reactive "
                          "admission is below 1 (false: engine v2's order, offers first; streams/engine/PACING.md)")

    @field_validator("supported_media_types")
    @classmethod
    def _known_media(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in value if m not in MEDIA_TYPES]
        if unknown or not value:
            raise ValueError(f"media types must be a non-empty subset of {sorted(MEDIA_TYPES)}, got {value}")
        return value

    @field_validator("algorithm", mode="before")
    @classmethod
    def _known_algorithm(cls, value: Any) -> Any:
        if value in (None, "", "AUTO"):
            return None
        if value not in ALGORITHMS:
            raise ValueError(f"must be one of {ALGORITHMS} or AUTO, got {value!r}")
        return value

    @field_validator("optimization_target", mode="before")
    @classmethod
    def _seed_spelling(cls, value: Any) -> Any:
        return "ABANDONMENT_RATE" if value == "ABANDONEMENT_RATE" else value  # the seed's [sic]


class PacingEndpointSettings(_Section):
    """Seed section ``pacingEndpoint``."""

    target_endpoint: str = Field("v2/journey/actiontargets/bulk", alias="targetEndpoint", min_length=1)


class SinkSettings(_Section):
    """The bulk sink connector."""

    group_id: str = "pacing-bulk-sink"
    client_id: str = "pacing"
    client_secret: SecretStr = SecretStr("pacing-secret")
    batch_max_entities: int = Field(500, ge=1, le=10_000)
    batch_max_bytes: int = Field(4_000_000, ge=1024)
    linger_ms: int = Field(500, ge=0)
    full_refresh_s: float = Field(300.0, gt=0, description="resend every known target this often")
    request_timeout_s: float = Field(10.0, gt=0)
    retry_initial_backoff_s: float = Field(0.5, gt=0)
    retry_max_backoff_s: float = Field(30.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)
    proxy_url: str | None = Field(None, pattern=r"^https?://", description="forward proxy for token and bulk requests")
    proxy_username: str | None = Field(None, description="Basic proxy authentication (needs proxy_url)")
    proxy_password: SecretStr | None = None
    verify_tls: bool = True
    ca_file: str | None = Field(None, description="PEM bundle of CAs to trust instead of the system's")
    topic_check_interval_s: float | None = Field(
        None, gt=0, le=3600, description="the sink's own kafka.topic_check_interval_s (unset: that one)"
    )
    web_port: int = Field(6070, ge=0, le=65535)


class ApiToken(_Section):
    """One bearer token of the Pacing REST API: its name (for logs; the token itself is never logged)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w.-]+$")
    token: SecretStr
    access: Literal["read", "write"] = "read"

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if len(secret) < 16 or not secret.isascii() or not secret.isprintable() or " " in secret:
            raise ValueError("must be at least 16 printable ASCII characters without spaces")
        return value


def read_token_file(path: str) -> tuple[ApiToken, ...]:
    """The tokens of a secret file: one ``ACCESS NAME TOKEN`` per line (``#`` comments, blank lines)."""
    tokens = []
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 3:
            raise ValueError(f"{path} line {number}: expected ACCESS NAME TOKEN")
        access, name, token = words
        try:
            tokens.append(ApiToken(name=name, token=SecretStr(token), access=access))
        except ValidationError as exc:
            raise ValueError(f"{path} line {number}: {describe_validation_error(exc)}") from None
    return tuple(tokens)


class ApiSettings(_Section):
    """The Pacing REST API every worker serves (docs/api.md)."""

    port: int = Field(6080, ge=0, le=65535, description="the API's port on every worker; 0 = off")
    host: str = Field("0.0.0.0", min_length=1)
    cert_file: str | None = Field(None, description="PEM certificate (chain): HTTPS when set, with key_file")
    key_file: str | None = Field(None, description="PEM private key of cert_file")
    tokens: tuple[ApiToken, ...] = Field((), description="bearer tokens: [{name, token, access = read|write}]")
    tokens_file: str | None = Field(None, description="secret file of more tokens, one 'ACCESS NAME TOKEN' a line")
    read_requires_token: bool = Field(False, description="reads need a token too (writes always do)")
    max_body_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024, description="larger request bodies get 413")

    @field_validator("cert_file", "key_file")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @field_validator("tokens_file")
    @classmethod
    def _token_file(cls, value: str | None) -> str | None:
        if value is not None:
            read_token_file(value)
        return value

    @model_validator(mode="after")
    def _pairs(self) -> ApiSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("needs both cert_file and key_file for HTTPS, or neither")
        if self.cert_file is not None:
            try:  # a certificate or key that does not load stops start-up here, not at the first request
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.cert_file, self.key_file)
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(f"cert_file and key_file do not load as a PEM certificate and its key: "
                                 f"{exc.strerror or exc}") from None
        names = [token.name for token in self.all_tokens()]
        if len(names) != len(set(names)):
            raise ValueError("two tokens share a name")
        return self

    @property
    def https(self) -> bool:
        """Whether the API serves HTTPS."""
        return self.cert_file is not None

    def all_tokens(self) -> tuple[ApiToken, ...]:
        """The configured tokens and those of ``tokens_file``."""
        return self.tokens + (read_token_file(self.tokens_file) if self.tokens_file else ())


class _ThresholdOption(_Section):
    threshold: float = Field(gt=0)


class _Reporter(_Section):
    enabled: bool
    log_frequency: float = Field(1800.0, alias="logFrequency")

    @field_validator("log_frequency", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


REPORTERS = ("log", "console", "messageServer")
"""The seed's reporter names; any other key under ``metrics.reporter`` is an error naming it."""


def _default_reporters() -> dict[str, _Reporter]:
    return {"log": _Reporter(enabled=False), "console": _Reporter(enabled=False),
            "messageServer": _Reporter(enabled=True)}


class MetricsSettings(_Section):
    """Seed section ``metrics``: self-monitoring thresholds and reporters."""

    gc_latency: _ThresholdOption = Field(_ThresholdOption(threshold=1000), alias="GcLatency")
    gc_frequency: _ThresholdOption = Field(_ThresholdOption(threshold=24), alias="GcFrequency")
    heap_memory_usage: _ThresholdOption = Field(
        _ThresholdOption(threshold=90), alias="HeapMemoryUsage", description="% of the memory limit"
    )
    memory_limit_mb: int | None = Field(None, gt=0, description="default: the cgroup limit, else RAM")
    reporter: dict[str, _Reporter] = Field(
        default_factory=_default_reporters,
        description="log, console, messageServer; a reporter left out keeps its default (messageServer on)",
    )

    @field_validator("reporter", mode="before")
    @classmethod
    def _known_reporters(cls, value: Any) -> Any:
        """Only the seed's reporter names: a typo (``lgo``) would otherwise run as a log reporter."""
        if not isinstance(value, dict):
            return value
        unknown = [name for name in value if name not in REPORTERS]
        if unknown:
            names = ", ".join(map(repr, unknown))
            raise ValueError(f"has an unknown reporter {names} (reporters: {', '.join(REPORTERS)})")
        return {**_default_reporters(), **value}


class Settings(BaseSettings):
    """All options of the pacing service; :func:`load_settings` builds them from their layers."""

    model_config = SettingsConfigDict(
        env_prefix="PACING_", env_nested_delimiter="__", extra="forbid", populate_by_name=True,
        frozen=True,
    )

    tenant: str = Field("demo", min_length=1)
    node_id: str = Field(default_factory=socket.gethostname, min_length=1)
    base_auth_url: str = Field("http://127.0.0.1:8089/oauth/token", pattern=r"^https?://")
    base_service_url: str = Field("http://127.0.0.1:8089/api/", pattern=r"^https?://")
    kafka: KafkaSettings = KafkaSettings()
    worker: WorkerSettings = WorkerSettings()
    targets: TargetDefaults = TargetDefaults()
    pacing_endpoint: PacingEndpointSettings = Field(PacingEndpointSettings(), alias="pacingEndpoint")
    sink: SinkSettings = SinkSettings()
    metrics: MetricsSettings = MetricsSettings()
    api: ApiSettings = ApiSettings()

    @field_validator("base_service_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def bulk_url(self) -> str:
        """Where the sink posts: ``{base_service_url}{pacingEndpoint.targetEndpoint}``."""
        return self.base_service_url + self.pacing_endpoint.target_endpoint.lstrip("/")


def _layers(path: str | os.PathLike[str] | None, command_line: dict[str, Any],
            overrides: dict[str, Any]) -> tuple[PydanticBaseSettingsSource, ...]:
    """The sources of one load, highest precedence first (the module docstring; docs/operations.md)."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    return (
        InitSettingsSource(Settings, command_line),
        EnvSettingsSource(Settings),  # PACING_<SECTION>__<OPTION>, as Settings.model_config says
        InitSettingsSource(Settings, overrides),
        InitSettingsSource(Settings, {"kafka": {"bootstrap_servers": bootstrap}} if bootstrap else {}),
        _config_file(path),
    )  # below them all: the defaults of the fields


def _config_file(path: str | os.PathLike[str] | None) -> TomlConfigSettingsSource:
    """The configuration file's source (none: no file); a missing or broken file is a :class:`ConfigError`."""
    if path and not Path(path).is_file():
        raise ConfigError(f"configuration file {path} {'is not a file' if Path(path).exists() else 'does not exist'}")
    try:
        return TomlConfigSettingsSource(Settings, toml_file=Path(path) if path else None)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc


def _option_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-"))


def load_settings(
    path: str | os.PathLike[str] | None = None, *, command_line: dict[str, Any] | None = None, **overrides: Any,
) -> Settings:
    """Read the file (``path``, else ``$PACING_CONFIG``, else none), apply overrides, validate.

    ``overrides`` (nested dicts, e.g. ``sink={"linger_ms": 200}``) replace file values and yield
    to the environment; ``command_line`` (same shape) beats the environment too — it is what
    the user typed for this one run (see the module docstring for the whole order).
    Raises :class:`ConfigError` naming the wrong options and why.
    """
    sources = _layers(path or os.environ.get("PACING_CONFIG"), command_line or {}, overrides)
    try:
        return Settings(_build_sources=(sources, {}))
    except ValidationError as exc:
        problems = describe_validation_error(exc, every=True, name=lambda loc: f"option '{_option_name(loc)}'")
        raise ConfigError(f"invalid configuration: {problems}") from None
