"""Custom presses only from the operator's allowlist, imported at start-up; artifacts only by a
relative name under the operator's directory. A request naming anything else is a PressSpecError
(HTTP 422) and nothing is imported (issue 19)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from deployments.engine.presses import artifact_path, install_press_policy, resolve
from deployments.engine.presses.catalog import CATALOG, PressEntry
from kvpool import PressSpec, PressSpecError


@pytest.fixture(autouse=True)
def default_policy():
    install_press_policy(None)
    yield
    install_press_policy(None)


def test_a_non_allowlisted_import_path_imports_nothing_and_lists_no_modules():
    # `this` prints the Zen of Python when imported: the example of an import-time effect.
    # A fresh interpreter, so the check sees exactly what resolving the request imported.
    script = textwrap.dedent("""
        import sys
        from deployments.engine.presses import resolve
        from kvpool import PressSpec, PressSpecError
        for name in ("this:Nope", "antigravity:X", "os:system", "kvpress:KnormPress"):
            try:
                resolve(PressSpec(name=name))
            except PressSpecError as exc:
                print("ERR", exc)
        print("IMPORTED", [m for m in ("this", "antigravity") if m in sys.modules])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[3], check=True).stdout
    assert "The Zen of Python" not in out
    assert "IMPORTED []" in out
    errors = [line for line in out.splitlines() if line.startswith("ERR")]
    assert len(errors) == 4 and all("not allowlisted" in e and "allowlisted: none" in e for e in errors), out
    assert "installed" not in out and "No module named" not in out


def test_allowlisted_press_is_imported_at_start_up_and_resolves():
    install_press_policy({"custom_allowlist": ["kvpress:KnormPress"]})
    resolved = resolve(PressSpec(name="kvpress:KnormPress", compression_ratio=0.5))
    assert type(resolved.press).__name__ == "KnormPress" and resolved.press.compression_ratio == 0.5
    with pytest.raises(PressSpecError, match=r"not allowlisted on this server \(allowlisted: kvpress:KnormPress\)"):
        resolve(PressSpec(name="kvpress:SnapKVPress"))
    # nested inside a wrapper: the same rule
    with pytest.raises(PressSpecError, match="not allowlisted"):
        resolve(PressSpec.model_validate({"name": "adakv", "presses": [{"name": "this:Nope"}]}))


@pytest.mark.parametrize("path, message", [
    ("nosuchmodule.x:Press", "cannot be imported"),
    ("collections:OrderedDict", "not a kvpress BasePress"),
])
def test_a_bad_allowlist_entry_fails_start_up_naming_it(path, message):
    with pytest.raises(PressSpecError, match=message):
        install_press_policy({"custom_allowlist": [path]})


def test_allowlist_entries_must_be_import_paths():
    with pytest.raises(ValueError, match="package.module:ClassName"):
        install_press_policy({"custom_allowlist": ["knorm"]})


@dataclass
class _ArtifactPress:
    """A stand-in press class for the builder's artifact rule (any dataclass with a path field)."""

    scorer_path: str = ""
    compression_ratio: float = 0.0


def test_artifacts_resolve_only_under_the_operator_directory(tmp_path: Path):
    (tmp_path / "scorers").mkdir()
    (tmp_path / "scorers" / "small.pt").write_bytes(b"weights")
    outside = tmp_path.parent / "outside.pt"
    outside.write_bytes(b"x")
    (tmp_path / "escape").symlink_to(outside)
    with pytest.raises(PressSpecError, match="not enabled"):
        artifact_path("scorers/small.pt")  # no artifact_dir configured: refused
    install_press_policy({"artifact_dir": str(tmp_path)})
    assert artifact_path("scorers/small.pt") == (tmp_path / "scorers" / "small.pt").resolve()
    for bad in ("/etc/passwd", "../outside.pt", "scorers/../../outside.pt", "escape", "hf://org/model",
                "org/model@main", "C:\\x", "scorers/missing.pt", "", "a\x00b"):
        with pytest.raises(PressSpecError):
            artifact_path(bad)


def test_the_builder_resolves_declared_artifact_arguments(tmp_path: Path, monkeypatch):
    (tmp_path / "w.pt").write_bytes(b"weights")
    entry = PressEntry("artifact_test", _ArtifactPress, True, artifact_args=("scorer_path",))
    monkeypatch.setitem(CATALOG, "artifact_test", entry)
    with pytest.raises(PressSpecError, match="press 'artifact_test'.*not enabled"):
        resolve(PressSpec.model_validate({"name": "artifact_test", "scorer_path": "w.pt"}))
    install_press_policy({"artifact_dir": str(tmp_path)})
    with pytest.raises(PressSpecError, match="outside|not a relative name"):
        resolve(PressSpec.model_validate({"name": "artifact_test", "scorer_path": "/etc/passwd"}))
    built = resolve(PressSpec.model_validate({"name": "artifact_test", "scorer_path": "w.pt"})).press
    assert built.scorer_path == str((tmp_path / "w.pt").resolve())


@pytest.mark.parametrize("spec", [{"name": "streaming_llm", "n_sink": "4"}, {"name": "streaming_llm", "n_sink": 4.5},
                                  {"name": "streaming_llm", "n_sink": True}])
def test_press_arguments_of_the_wrong_kind_are_422_before_any_forward(spec):
    with pytest.raises(PressSpecError, match="argument 'n_sink' must be a int"):
        resolve(PressSpec.model_validate(spec))
