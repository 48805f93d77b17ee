"""Configuration: seed option names, file + environment, errors that name the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.runtime.config import ConfigError, load_settings, parse_duration


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PACING_CONFIG", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)


def test_file_with_seed_names(tmp_path: Path) -> None:
    path = tmp_path / "pacing.toml"
    path.write_text(
        'tenant = "acme"\nbase_service_url = "https://api.example.test/api"\n'
        '[pacingEndpoint]\ntargetEndpoint = "v2/journey/actiontargets/bulk"\n'
        '[metrics.GcLatency]\nthreshold = 500\n'
        '[metrics.reporter.log]\nenabled = true\nlogFrequency = "30min"\n'
    )
    settings = load_settings(path)
    assert settings.tenant == "acme"
    assert settings.bulk_url == "https://api.example.test/api/v2/journey/actiontargets/bulk"
    assert settings.metrics.gc_latency.threshold == 500
    assert settings.metrics.reporter["log"].log_frequency == 1800


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pacing.toml"
    path.write_text('[sink]\nlinger_ms = 900\n')
    monkeypatch.setenv("PACING_SINK__LINGER_MS", "200")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    settings = load_settings(path)
    assert settings.sink.linger_ms == 200
    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"


@pytest.mark.parametrize(
    ("overrides", "option"),
    [
        ({"sink": {"batch_max_entities": 20_000}}, "sink.batch_max_entities"),
        ({"pacingEndpoint": {"targetEndpoint": ""}}, "pacingEndpoint.targetEndpoint"),
        ({"targets": {"algorithm": "GREEDY"}}, "targets.algorithm"),
        ({"kafka": {"bootstrap_servers": "no-port"}}, "kafka.bootstrap_servers"),
        ({"base_auth_url": "ftp://x"}, "base_auth_url"),
        ({"metrics": {"GcLatency": {"threshold": -1}}}, "metrics.GcLatency.threshold"),
        ({"sink": {"lingerms": 1}}, "sink.lingerms"),
        ({"worker": {"keepalive_s": 45}}, "worker.keepalive_s"),  # longer than half the fence window
    ],
)
def test_wrong_option_is_named(overrides: dict, option: str) -> None:
    with pytest.raises(ConfigError, match=f"option '{option}'"):
        load_settings(**overrides)


def test_missing_or_broken_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("tenant = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_seed_spelling_of_abandonment_is_accepted() -> None:
    assert load_settings(targets={"optimization_target": "ABANDONEMENT_RATE"}).targets.optimization_target == (
        "ABANDONMENT_RATE"
    )


def test_secrets_do_not_appear_in_the_settings_repr() -> None:
    settings = load_settings(sink={"client_secret": "s3cr3t"})
    assert "s3cr3t" not in repr(settings)
    assert settings.sink.client_secret.get_secret_value() == "s3cr3t"


@pytest.mark.parametrize(("text", "seconds"), [("30min", 1800), ("10s", 10), ("500ms", 0.5), (2, 2), ("1h", 3600)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_command_line_beats_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "pacing.toml"
    path.write_text('[kafka]\nbootstrap_servers = "file:9092"\ntopic_prefix = "file"\n[sink]\nlinger_ms = 900\n')
    monkeypatch.setenv("PACING_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("PACING_KAFKA__TOPIC_PREFIX", "env")
    settings = load_settings(path, command_line={"kafka": {"bootstrap_servers": "typed:9092"}})
    assert settings.kafka.bootstrap_servers == "typed:9092"  # command line over environment
    assert settings.kafka.topic_prefix == "env"  # environment over file, other options of the section kept
    assert settings.sink.linger_ms == 900  # file over defaults
    assert load_settings(path).kafka.bootstrap_servers == "env:9092"  # the command line applied to one load only


@pytest.mark.parametrize("source", ["file", "environment"])
def test_a_misspelt_reporter_is_an_error_naming_it(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "pacing.toml"
    if source == "file":
        path.write_text("[metrics.reporter.lgo]\nenabled = true\n")
    else:
        path.write_text("")
        monkeypatch.setenv("PACING_METRICS__REPORTER__LGO__ENABLED", "true")
    with pytest.raises(ConfigError, match=r"option 'metrics.reporter' has an unknown reporter 'lgo'"):
        load_settings(path)


def test_a_reporter_left_out_keeps_its_default() -> None:
    reporters = load_settings(metrics={"reporter": {"log": {"enabled": True}}}).metrics.reporter
    assert {name: r.enabled for name, r in reporters.items()} == {"log": True, "console": False,
                                                                  "messageServer": True}


def test_every_layer_in_its_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # command line > PACING_ environment > a caller's overrides > KAFKA_BOOTSTRAP_SERVERS > file > defaults
    path = tmp_path / "pacing.toml"
    path.write_text('tenant = "file"\n[kafka]\nbootstrap_servers = "file:9092"\n[sink]\nlinger_ms = 900\n')
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kbs:9092")
    monkeypatch.setenv("PACING_TENANT", "env")
    plain = load_settings(path)
    assert (plain.kafka.bootstrap_servers, plain.tenant) == ("kbs:9092", "env")
    overridden = load_settings(path, kafka={"bootstrap_servers": "over:9092"}, tenant="over")
    assert (overridden.kafka.bootstrap_servers, overridden.tenant) == ("over:9092", "env")
    typed = load_settings(path, command_line={"tenant": "typed"}, tenant="over")
    assert typed.tenant == "typed"
    for settings in (plain, overridden, typed):
        assert settings.sink.linger_ms == 900 and settings.worker.app_id == "pacing-nodes"


def test_a_folder_given_as_the_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"configuration file {tmp_path} is not a file"):
        load_settings(tmp_path)


def test_pydantic_settings_builds_the_settings_from_the_sources_of_one_load() -> None:
    # load_settings passes its layers as _build_sources (streams/runtime/config.py says why); a release
    # without it would take the argument for an unknown option, and every load would fail.
    import inspect

    from pydantic_settings import BaseSettings

    assert "_build_sources" in inspect.signature(BaseSettings.__init__).parameters
