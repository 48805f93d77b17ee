"""Every fenced block of the README and of ``docs/*.md`` runs or is checked against the real thing.

The README and the documents under ``docs/`` are the contract, so their examples must work as
written. Each block is registered in :data:`BLOCKS` by the document it lives in, its language and
the start of its first line, with how it is verified:

- ``run``: executed here (Python blocks, shell blocks against an in-process emulator);
- ``check``: validated by the real code — commands parsed by the ``pacing`` argument parser and
  resolved by the settings loader, TOML by the settings loader, JSON by the schemas and the
  bulk models, sample output re-rendered by the code that prints it, paths against the tree;
- ``integration``: needs the embedded broker; run by ``tests/integration/test_readme_commands.py``;
- ``listed``: cannot run here; the entry says why.

A block without an entry, or an entry without its block in its document, fails the suite: a new
example is verified from the day it is written, and a block moved to another document is followed.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import pytest

from connectors.bulk_models import ActionTarget, BulkActionTargetsResponse
from infra.cli import _listen_address, _settings, parse_args
from infra.console import format_alarm
from infra.emulator import JourneyEmulator
from schemas import Alarm, AlarmState, StatBatcher, StatEvent, decode_stat_records, encode_alarm
from streams.runtime.config import REPORTERS, load_settings
from streams.runtime.topics import TopicNames

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
CONTRACTS, OPERATIONS, BENCHMARKS, DEVELOPMENT, API = (f"docs/{name}.md" for name in
                                                       ("contracts", "operations", "benchmarks", "development", "api"))
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)


@dataclass(frozen=True)
class Block:
    """One fenced block of the README or of a document under docs/."""

    doc: str  # the document, relative to the root: README.md or docs/<name>.md
    lang: str
    text: str
    line: int  # of the opening fence

    @property
    def first_line(self) -> str:
        return next(line for line in self.text.splitlines() if line.strip())


@dataclass(frozen=True)
class Entry:
    """How one block is verified."""

    lang: str
    starts: str  # the start of the block's first non-empty line
    how: str  # run, check, integration or listed
    reason: str = ""  # for listed blocks: why they cannot run here
    doc: str = "README.md"  # the document the block lives in


BLOCKS = [
    Entry("", "stat producers ──►", "check"),
    Entry("sh", "make run ", "check"),
    Entry("", "[    10s] events in", "listed",
          "sample output of `make run` (a minute of the whole pipeline); its figures are asserted by "
          "tests/integration/test_commands.py::test_pacing_run_delivers_decisions_and_stops_everything"),
    Entry("sh", "EMULATOR=http://127.0.0.1:8089", "run"),
    Entry("sh", "API=http://127.0.0.1:6080", "run"),
    Entry("json", '{"name": "Sales chat"', "check", doc=API),
    Entry("toml", "[api]", "check", doc=API),
    Entry("", "pacing top  127.0.0.1:9092", "check", doc=OPERATIONS),  # re-rendered by tests/unit/infra/test_top.py
    Entry("sh", ".venv/bin/pacing broker --bootstrap-servers", "check", doc=OPERATIONS),
    Entry("sh", """echo '{"tenant": "demo", "target_id": "vq-sales-chat", "statistic\"""", "integration",
          doc=CONTRACTS),
    Entry("python", "import asyncio, time", "integration", doc=CONTRACTS),
    Entry("python", "import io, time", "integration", doc=CONTRACTS),
    Entry("json", '{"type": "record", "name": "StatBatch"', "check", doc=CONTRACTS),
    Entry("json", '{"events": [', "check", doc=CONTRACTS),
    Entry("python", "from schemas import StatBatcher", "run", doc=CONTRACTS),
    Entry("sh", """echo '{"tenant": "demo", "target_id": "vq-sales-chat", "name\"""", "integration", doc=CONTRACTS),
    Entry("json", '{"entities": [', "check", doc=CONTRACTS),
    Entry("json", '{"results": [', "check", doc=CONTRACTS),
    Entry("", "2026-11-25 10:15:02  RAISED", "check", doc=CONTRACTS),
    # lines of the full table in streams/engine/PACING.md
    Entry("", "[one agent] 1 agent, p 0.1", "check", doc=BENCHMARKS),
    Entry("toml", 'tenant = "acme"', "check", doc=OPERATIONS),
    Entry("sh", "make kafka ", "check", doc=DEVELOPMENT),
    Entry("sh", "make test ", "check", doc=DEVELOPMENT),
    Entry("", "pyproject.toml  Makefile  README.md", "check"),
]


def documents() -> list[Path]:
    """The documents whose blocks are verified: the README and every docs/*.md."""
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def readme_blocks() -> list[Block]:
    """The fenced blocks of the README and of docs/*.md, in order, document by document."""
    blocks = []
    for path in documents():
        text = path.read_text()
        doc = path.relative_to(ROOT).as_posix()
        blocks += [Block(doc, m.group(1), m.group(2), text[:m.start()].count("\n") + 1) for m in _FENCE.finditer(text)]
    return blocks


def _matches(entry: Entry, found: Block) -> bool:
    return found.doc == entry.doc and found.lang == entry.lang and found.first_line.startswith(entry.starts)


def block(starts: str) -> Block:
    """The one block registered as ``starts``, in the document its entry names."""
    entry = next(e for e in BLOCKS if e.starts == starts)
    found = [b for b in readme_blocks() if _matches(entry, b)]
    assert len(found) == 1, f"{entry.doc} block starting {starts!r}: found {len(found)}"
    return found[0]


def test_every_readme_block_is_registered_and_every_entry_has_its_block() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= len(BLOCKS) - 1  # the fence pattern still finds the blocks
    unlisted = [f"{b.doc} line {b.line}: ```{b.lang} {b.first_line[:60]}" for b in blocks
                if not any(_matches(e, b) for e in BLOCKS)]
    assert not unlisted, "blocks nobody verifies (add them to BLOCKS in tests/unit/test_readme.py):\n" + \
        "\n".join(unlisted)
    for entry in BLOCKS:
        block(entry.starts)  # exactly one block each
        assert entry.how in ("run", "check", "integration", "listed"), entry
        assert (entry.how == "listed") == bool(entry.reason), f"a listed block says why, others need no reason: {entry}"
        assert (ROOT / entry.doc) in documents(), entry


def test_the_documents_are_the_readme_and_docs() -> None:
    # The moved sections live here; an empty docs/ would leave their blocks unchecked.
    assert {path.relative_to(ROOT).as_posix() for path in documents()} >= {
        "README.md", CONTRACTS, OPERATIONS, BENCHMARKS, DEVELOPMENT}


def test_integration_entries_are_the_ones_the_integration_test_runs() -> None:
    from tests.integration.test_readme_commands import RUNNERS

    assert set(RUNNERS) == {e.starts for e in BLOCKS if e.how == "integration"}


# ---- shell: make targets and pacing command lines -------------------------------------------------------------


def _make_targets() -> set[str]:
    return set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))


def _commands(text: str) -> list[tuple[dict[str, str], list[str], str]]:
    """(environment assignments, words, trailing comment) of each command line of a shell block."""
    commands = []
    for line in text.splitlines():
        code, _, comment = line.partition("  #")
        words = shlex.split(code)
        env = {}
        while words and re.match(r"^[A-Z_]+=", words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if words:
            commands.append((env, words, comment.strip()))
    return commands


@pytest.mark.parametrize("starts", ["make run ", "make kafka ", "make test "])
def test_make_and_pacing_lines_name_real_targets_and_parse(starts: str) -> None:
    for _, words, _ in _commands(block(starts).text):
        if words[0] == "make":
            assert words[1] in _make_targets(), words
        else:
            assert words[0] == ".venv/bin/pacing", words
            parse_args(words[1:])  # exits with a usage error on a wrong option


def test_the_precedence_examples_resolve_as_their_comments_say(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PACING_CONFIG", "PACING_KAFKA__BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)
    commands = _commands(block(".venv/bin/pacing broker --bootstrap-servers").text)
    assert len(commands) == 3
    for env, words, comment in commands:
        assert words[0] == ".venv/bin/pacing"
        args = parse_args(words[1:])
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            if args.command == "broker":
                assert comment == "listens on 19092"
                assert _listen_address(args) == ("127.0.0.1", 19092)
                continue
            bootstrap = _settings(args).kafka.bootstrap_servers
        if "connects to" in comment:
            assert bootstrap.endswith(":" + comment.rsplit(" ", 1)[1]), (words, bootstrap)
        else:
            assert "the file's kafka.bootstrap_servers" in comment
            assert args.from_beginning
            assert bootstrap == load_settings(args.config).kafka.bootstrap_servers == "127.0.0.1:9092"


async def test_the_fault_switch_curl_lines_work_against_the_emulator(emulator: JourneyEmulator) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    lines = block("EMULATOR=http://127.0.0.1:8089").text.splitlines()
    assignment, raise_fault, clear_fault = lines
    assignment = assignment.replace("http://127.0.0.1:8089", emulator.base_url)

    async def bash(line: str) -> None:
        process = await asyncio.create_subprocess_exec("bash", "-ec", f"{assignment}\n{line}",
                                                       stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await process.communicate()
        assert process.returncode == 0, err

    await bash(raise_fault)
    assert emulator.faults.current.status == 503
    await bash(clear_fault)
    assert emulator.faults.current.status is None


async def test_the_api_curl_lines_work_against_a_served_api() -> None:
    from tests.unit.api.api_doubles import decision, serve_api

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    api = await serve_api()
    try:
        for target in ("queue-15-reactive", "chat-2-low", "sales-5-high", "callback-60"):  # as `make run` names them
            media = ("callback",) if target.startswith("callback") else ("webchat",)
            api.directory.apply_decision(target.encode(), decision(target, media=media))
        assignment, *lines = block("API=http://127.0.0.1:6080").text.splitlines()
        assert len(lines) == 3 and all(line.startswith("curl -fsS ") for line in lines)
        assignment = assignment.replace("http://127.0.0.1:6080", api.url)
        answers = []
        for line in lines:
            process = await asyncio.create_subprocess_exec(
                "bash", "-ec", f"{assignment}\n{line}", stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            out, err = await process.communicate()
            assert process.returncode == 0, (line, err)
            answers.append(json.loads(out))
        listed, one, state = answers
        assert [item["target_id"] for item in listed["items"]] == ["callback-60", "chat-2-low", "queue-15-reactive"]
        assert one["target_id"] == "queue-15-reactive" and one["decision"]["allowed_offers"] == 2
        assert state["reactiveState"] == 0.5 and state["groupsCounted"] == 3  # the three webchat groups
    finally:
        await api.stop()


def test_the_api_definition_example_is_accepted_as_a_pacing_targets_record() -> None:
    from streams.api.definitions import DefinitionWriter
    from tests.unit.api.api_doubles import RecordingSend

    settings = load_settings()
    writer = DefinitionWriter(settings.tenant, "pacing.targets", RecordingSend(), settings.worker.send_timeout_s)
    config = writer.validate("vq-sales-chat", block('{"name": "Sales chat"').text.encode())
    assert (config.target_id, config.algorithm, config.proactive_ratio) == ("vq-sales-chat", "PREDICTIVE_B_DUAL", 0.5)


def test_the_api_security_example_loads_with_real_files(tmp_path: Path) -> None:
    import tomllib

    import trustme

    issued = trustme.CA().issue_cert("localhost")
    files = {"/etc/pacing/api.pem": tmp_path / "api.pem", "/etc/pacing/api.key": tmp_path / "api.key",
             "/etc/pacing/api-tokens": tmp_path / "tokens"}
    files["/etc/pacing/api.pem"].write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files["/etc/pacing/api.key"]))
    files["/etc/pacing/api-tokens"].write_text("write ops 0123456789abcdef0123\n")
    text = block("[api]").text
    for shown, real in files.items():
        text = text.replace(shown, str(real))
    settings = load_settings(api=tomllib.loads(text)["api"])
    assert settings.api.https and settings.api.read_requires_token
    assert [token.access for token in settings.api.all_tokens()] == ["write"]


# ---- data: schemas, JSON records, models, TOML -----------------------------------------------------------------


def test_the_statbatch_schema_shown_is_the_released_one() -> None:
    stat_event = (ROOT / "schemas/avro/stat_event.v1.avsc").read_text()
    shown = json.loads(block('{"type": "record", "name": "StatBatch"').text.replace("<the StatEvent record>",
                                                                                     stat_event))
    released = json.loads((ROOT / "schemas/avro/stat_batch.v1.avsc").read_text())
    canonical = fastavro.schema.to_parsing_canonical_form
    assert canonical(fastavro.parse_schema(shown)) == canonical(fastavro.parse_schema(released))


def test_the_json_statbatch_decodes_to_its_events() -> None:
    text = block('{"events": [').text
    [events] = decode_stat_records([text.encode()])
    assert [(e.tenant, e.target_id, e.statistic, e.value) for e in events] == [
        ("acme", "vq-sales-chat", "ready_agents", 4), ("acme", "vq-sales-chat", "busy_agents", 8)]


def test_the_bulk_request_and_response_match_the_models() -> None:
    request = json.loads(block('{"entities": [').text)
    assert list(request) == ["entities"], "the request body holds only the entities"
    entities = [ActionTarget.model_validate(item) for item in request["entities"]]
    assert entities[0].id == "vq-sales-chat"
    # The response's first entity is elided ("…": the entity as sent); put the request's entity there.
    placeholder = '{"id": "vq-sales-chat", "…": "…"}'
    response_text = block('{"results": [').text
    assert placeholder in response_text
    entity = json.dumps(json.loads(block('{"entities": [').text)["entities"][0])
    response = BulkActionTargetsResponse.model_validate_json(response_text.replace(placeholder, entity))
    assert [r.success for r in response.results] == [True, False]
    assert response.errorCount == 1


def test_the_toml_example_loads_as_its_comments_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PACING_CONFIG", "PACING_KAFKA__BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "pacing.toml"
    path.write_text(block('tenant = "acme"').text)
    settings = load_settings(path)
    assert settings.tenant == "acme"
    assert settings.kafka.bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.sink.linger_ms == 200
    reporters = settings.metrics.reporter
    assert set(reporters) == set(REPORTERS)
    assert reporters["log"].enabled and reporters["log"].log_frequency == 1800
    assert reporters["messageServer"].enabled  # "keeps its default"
    monkeypatch.setenv("PACING_KAFKA__BOOTSTRAP_SERVERS", "env:9092")  # "… beat it"
    assert load_settings(path).kafka.bootstrap_servers == "env:9092"
    assert load_settings(path, command_line={"kafka": {"bootstrap_servers": "typed:9092"}}).kafka.bootstrap_servers \
        == "typed:9092"


# ---- Python: the StatBatcher recipe ----------------------------------------------------------------------------


class _RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.sent.append((topic, key, value))


def test_the_statbatcher_recipe_sends_one_record_per_target() -> None:
    now = int(time.time() * 1000)
    events = [StatEvent(tenant="demo", target_id=f"vq-{t}", statistic=s, value=v, timestamp=now, source="bridge")
              for t in range(3) for s, v in (("ready_agents", 4), ("busy_agents", 6), ("waiting_interactions", 1))]
    producer = _RecordingProducer()
    namespace: dict[str, Any] = {"events_of_this_cycle": events, "producer": producer}
    recipe = block("from schemas import StatBatcher")
    exec(compile(recipe.text, recipe.doc, "exec"), namespace)
    assert namespace["StatBatcher"] is StatBatcher
    assert [topic for topic, _, _ in producer.sent] == ["pacing.stats"] * 3
    for _, key, value in producer.sent:
        [decoded] = decode_stat_records([value])
        assert {e.target_id for e in decoded} == {key.decode()}
        assert [e.statistic for e in decoded] == ["ready_agents", "busy_agents", "waiting_interactions"]


# ---- sample output and pictures --------------------------------------------------------------------------------

_ALARM_LINE = re.compile(r"^(?P<date>\S+ \S+)  (?P<state>RAISED |CLEARED)  (?P<name>\S+)  (?P<where>.+?): (?P<msg>.*)$")


def test_the_alarm_lines_are_what_pacing_alarms_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        for line in block("2026-11-25 10:15:02  RAISED").text.splitlines():
            parts = _ALARM_LINE.match(line)
            assert parts, line
            scope, _, node = parts["where"].partition(" ")
            stamp = time.mktime(time.strptime(parts["date"], "%Y-%m-%d %H:%M:%S"))
            alarm = Alarm(name=parts["name"], state=AlarmState(parts["state"].strip().lower()), severity="major",
                          tenant="demo", node=node or "node-1", scope=scope, message=parts["msg"],
                          timestamp=int(stamp * 1000))
            assert format_alarm(encode_alarm(alarm)) == line
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_diagram_names_the_real_topics() -> None:
    shown = set(re.findall(r"pacing\.[a-z.]*[a-z]", block("stat producers ──►").text))
    real = set(vars(TopicNames.for_prefix("")).values())
    assert shown, "no topic in the diagram"
    assert shown <= real, shown - real


def test_the_layout_names_files_that_exist() -> None:
    lines = block("pyproject.toml  Makefile  README.md").text.splitlines()
    for name in lines[0].split():
        assert (ROOT / name).exists(), name
    folder = None
    for line in lines[1:]:
        if line[:1].strip():
            name, line = line.split(maxsplit=1)
            folder = ROOT / name
            assert folder.is_dir(), name
        assert folder is not None
        for name in re.findall(r"[\w*]+(?:/[\w*.]*)*\.(?:py|avsc|md)|\b\w+/(?=[\s,)]|$)", line):
            assert list(folder.glob(f"**/{name.rstrip('/')}")), f"{name} under {folder.relative_to(ROOT)}"


def test_the_pacing_benchmark_excerpt_is_lines_of_the_full_table() -> None:
    # The full table is what `make bench-pacing` printed (streams/engine/PACING.md §5); the
    # excerpt in docs/benchmarks.md must not drift from it.
    full = (ROOT / "streams" / "engine" / "PACING.md").read_text().splitlines()
    excerpt = [line for line in block("[one agent] 1 agent, p 0.1").text.splitlines() if line.strip()]
    missing = [line for line in excerpt if line not in full]
    assert not missing, f"docs/benchmarks.md excerpt lines not in PACING.md's table: {missing}"


# ---- links between the documents ----------------------------------------------------------------------------------

_LINK = re.compile(r"\]\((?!https?://)([^)\s#]*)(?:#([^)\s]*))?\)")


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub makes of a Markdown file's headings (code blocks skipped)."""
    text = _FENCE.sub("", path.read_text())
    headings = re.findall(r"^#{1,6} (.+)$", text, re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_links_between_the_documents_point_at_files_and_headings_that_exist() -> None:
    for path in documents():
        for target, anchor in _LINK.findall(_FENCE.sub("", path.read_text())):
            linked = (path.parent / target).resolve() if target else path
            where = f"{path.relative_to(ROOT)} links to {target}#{anchor}"
            assert linked.exists(), where
            if anchor and linked.suffix == ".md":
                assert anchor in _anchors(linked), where
