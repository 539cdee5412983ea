"""API keys held as SHA-256 digests: key documents, constant-time matching, reload on change, fail closed."""

from __future__ import annotations

import hashlib
import os

import pytest

from deployments.ingress.auth.api_keys import KeyRing, KeysConfigError, key_digest, main, parse_keys_document
from deployments.ingress.auth.authenticator import Authenticator
from deployments.ingress.errors import APIError
from deployments.ingress.auth.config import SecurityConfig


def doc(*entries: tuple[str, str, bool]) -> str:
    lines = ["keys:"]
    for owner, key, admin in entries:
        lines += [f"  - owner: {owner}", f"    sha256: {hashlib.sha256(key.encode()).hexdigest()}",
                  f"    admin: {str(admin).lower()}"]
    return "\n".join(lines) + "\n"


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_keys_file_authenticates_by_hash_only(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(doc(("alice", "key-a", True), ("bob", "key-b", False)))
    assert "key-a" not in path.read_text()
    auth = Authenticator(SecurityConfig(keys_file=str(path)))
    assert auth.owner("Bearer key-a") == "alice" and auth.owner(None, "key-b") == "bob"
    assert auth.require_admin("Bearer key-a") == "alice"
    with pytest.raises(APIError) as denied:
        auth.require_admin("Bearer key-b")
    assert denied.value.status == 403
    for header in (None, "Bearer nope", "Basic a2V5", "Bearer "):
        with pytest.raises(APIError) as unknown:
            auth.owner(header)
        assert unknown.value.status == 401


def test_rotation_reloads_the_file_without_restart(tmp_path):
    path, clock = tmp_path / "keys.yaml", Clock()
    path.write_text(doc(("alice", "old", False)))
    ring = KeyRing(SecurityConfig(keys_file=str(path), reload_s=1.0), clock=clock)
    assert ring.match("old").owner == "alice"
    path.write_text(doc(("alice", "new-key", False)))
    os.utime(path, (1, 12345))                      # a distinct mtime even on coarse clocks
    assert ring.match("old") is not None            # not checked again before reload_s
    clock.now = 2.0
    assert ring.match("old") is None and ring.match("new-key").owner == "alice" and ring.reloads == 1
    path.write_text("keys: [oops")                  # a broken rewrite keeps the last good keys
    os.utime(path, (1, 23456))
    clock.now = 4.0
    assert ring.match("new-key").owner == "alice"
    path.write_text("keys: []\n")                  # an emptied file refuses every key: never open
    os.utime(path, (1, 34567))
    clock.now = 6.0
    assert ring.match("new-key") is None and ring.enabled


def test_env_keys_and_inline_keys_merge(monkeypatch):
    monkeypatch.setenv("KVFLEET_KEYS", doc(("carol", "key-c", False)))
    ring = KeyRing(SecurityConfig(keys_env="KVFLEET_KEYS", api_keys={"key-d": "dave"}, admin_keys=["key-d"]))
    assert ring.match("key-c").owner == "carol" and ring.match("key-d").admin
    assert ring.match("key-c").digest == key_digest("key-c")


def test_configured_but_empty_or_missing_sources_fail_closed(tmp_path, monkeypatch):
    with pytest.raises(KeysConfigError, match="cannot be read"):
        KeyRing(SecurityConfig(keys_file=str(tmp_path / "absent.yaml")))
    (tmp_path / "empty.yaml").write_text("keys: []\n")
    with pytest.raises(KeysConfigError, match="holds no key"):
        KeyRing(SecurityConfig(keys_file=str(tmp_path / "empty.yaml")))
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(KeysConfigError, match="not set"):
        KeyRing(SecurityConfig(keys_env="NOT_SET_ANYWHERE"))
    assert not KeyRing(SecurityConfig()).enabled    # nothing configured: auth off


@pytest.mark.parametrize("text, problem", [
    ("- a\n", "'keys' list"),
    ("keys: [{owner: a, sha256: abc}]", "64-hex-digit"),
    ("keys: [{owner: '', sha256: " + "0" * 64 + "}]", "owner"),
    ("keys: [{owner: a, key: plain}]", "expected"),       # plain keys are not accepted in a document
])
def test_malformed_documents_name_the_problem(text, problem):
    with pytest.raises(KeysConfigError, match=problem):
        parse_keys_document(text, "test")


def test_cli_mints_a_key_and_its_entry(capsys, tmp_path):
    main(["new", "alice", "--admin"])
    out = capsys.readouterr().out
    key = out.splitlines()[0].removeprefix("key: ")
    entries = parse_keys_document(out.split("\n", 1)[1], "cli")
    assert entries[0].owner == "alice" and entries[0].admin and entries[0].digest == key_digest(key)
    main(["hash", "abc"])
    assert capsys.readouterr().out.strip() == hashlib.sha256(b"abc").hexdigest()
    path = tmp_path / "keys.yaml"
    main(["new", "ops", "--admin", "--keys-file", str(path)])
    main(["new", "proxy", "--keys-file", str(path)])
    ops, proxy = capsys.readouterr().out.split()
    ring = KeyRing(SecurityConfig(keys_file=str(path)))
    assert ring.match(ops).admin and ring.match(proxy).owner == "proxy" and not ring.match(proxy).admin
    assert ops not in path.read_text() and proxy not in path.read_text()
