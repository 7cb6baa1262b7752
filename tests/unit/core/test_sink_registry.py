"""One sink registry: built-ins plus `logweave.sinks` entry points, each plugin's settings validated
like the built-ins', and a missing optional package named by its extra.

The plugin here is a real installed distribution as importlib.metadata sees one: a `*.dist-info`
directory with an `entry_points.txt`, on sys.path beside its module (no stand-in for discovery).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from core import sink_registry
from core.errors import ConfigError
from core.settings import load_settings
from sinks import create_sink

PLUGIN_MODULE = '''
from pydantic import Field
from sinks.base import SettingsGroup, Sink, WriteResult

class ProbeSettings(SettingsGroup):
    url: str
    batch_lines: int = Field(100, ge=1)

class ProbeSink(Sink):
    name = "probe"
    settings_model = ProbeSettings

    def __init__(self, settings):
        self.settings = settings

    def batch_limits(self):
        return (self.settings.batch_lines, 1 << 20, 1.0)

    async def start(self): ...
    async def stop(self): ...
    async def write_batch(self, batch): return WriteResult()
'''


def install_plugin(root: Path, name: str, target: str, module_source: str | None = PLUGIN_MODULE) -> None:
    """Lay out a distribution the way pip installs one: module + dist-info with entry_points.txt."""
    module = target.split(":")[0]
    if module_source is not None:
        (root / f"{module}.py").write_text(module_source)
    info = root / f"{module}_dist-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}-dist\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[logweave.sinks]\n{name} = {target}\n")


@pytest.fixture
def probe_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install_plugin(tmp_path, "probe", "probe_sink_plugin:ProbeSink")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_plugin_is_found_by_name_and_built_with_its_validated_settings(probe_plugin: Path) -> None:
    assert "probe" in sink_registry.sink_names() and sink_registry.sink_names()[0] == "file"
    settings = load_settings(environ={"LOGWEAVE_SINKS__ENABLED": "file,probe",
                                      "LOGWEAVE_SINKS__PROBE__URL": "http://127.0.0.1:9/x",
                                      "LOGWEAVE_SINKS__PROBE__BATCH_LINES": "7"})
    group = settings.sinks.plugin("probe")
    assert type(group).__name__ == "ProbeSettings" and group.model_dump() == {"url": "http://127.0.0.1:9/x",
                                                                            "batch_lines": 7}
    sink = create_sink("probe", settings)
    assert sink.name == "probe" and sink.batch_limits()[0] == 7
    assert settings.model_dump(mode="json")["sinks"]["probe"]["batch_lines"] == 7  # what check-config prints


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"LOGWEAVE_SINKS__ENABLED": "probe"}, ["sinks.probe.url", "LOGWEAVE_SINKS__PROBE__URL", "= None",
                                                "required, and not set"]),
        ({"LOGWEAVE_SINKS__PROBE__URL": "u", "LOGWEAVE_SINKS__PROBE__BATCH_LINES": "0"},
         ["sinks.probe.batch_lines", "LOGWEAVE_SINKS__PROBE__BATCH_LINES", "'0'", "greater than or equal to 1"]),
        ({"LOGWEAVE_SINKS__PROBE__URL": "u", "LOGWEAVE_SINKS__PROBE__TYPO": "1"},
         ["sinks.probe.typo", "unknown setting"]),
        ({"LOGWEAVE_SINKS__NOSUCH__URL": "u"}, ["sinks.nosuch", "LOGWEAVE_SINKS__NOSUCH", "unknown setting"]),
        ({"LOGWEAVE_SINKS__ENABLED": "file,prob"}, ["sinks.enabled", "'prob'", "probe"]),
    ],
)
def test_plugin_settings_errors_name_the_setting(probe_plugin: Path, environ: dict[str, str],
                                                 expected: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=environ)
    message = str(info.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, message


def test_routing_rules_accept_plugins(probe_plugin: Path, tmp_path: Path) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text("sinks:\n  enabled: [file, probe]\n  probe: {url: 'http://h/'}\n"
                      "routing:\n  rules:\n    - {name: all, sinks: [probe]}\n")
    assert load_settings(config_file=config, environ={}).routing.rules[0].sinks == ["probe"]


def test_a_plugin_that_cannot_be_imported_is_named_with_its_distribution(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    install_plugin(tmp_path, "broken", "broken_sink_plugin:Sink", "import no_such_dependency_here\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"LOGWEAVE_SINKS__ENABLED": "broken"})
    assert "sinks.broken" in str(info.value) and "broken_sink_plugin-dist" in str(info.value)
    assert "no_such_dependency_here" in str(info.value)


def test_a_missing_optional_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sink_registry.BUILTIN_SINKS, "cloudy",
                        sink_registry.BuiltinSink("sinks.cloudy:CloudySink", "cloudy", ("no_such_client.sub",)))
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"LOGWEAVE_SINKS__ENABLED": "file,cloudy"})
    assert "sinks.enabled" in str(info.value) and "pip install 'logweave[cloudy]'" in str(info.value)
    with pytest.raises(ConfigError, match=r"logweave\[cloudy\]"):
        create_sink("cloudy", load_settings(environ={}))


def test_check_config_validates_a_plugin_group(probe_plugin: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(probe_plugin), "LOGWEAVE_SINKS__ENABLED": "probe",
           "LOGWEAVE_SINKS__PROBE__URL": "http://127.0.0.1:1/"}
    run = subprocess.run([sys.executable, "-m", "commands.cli", "check-config"], env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert orjson.loads(run.stdout)["sinks"]["probe"] == {"url": "http://127.0.0.1:1/", "batch_lines": 100}
    run = subprocess.run([sys.executable, "-m", "commands.cli", "check-config"],
                         env={**env, "LOGWEAVE_SINKS__PROBE__BATCH_LINES": "lots"}, capture_output=True, text=True)
    assert run.returncode == 2 and "sinks.probe.batch_lines" in run.stderr and "'lots'" in run.stderr
