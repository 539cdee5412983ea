"""KeyRing: the API keys an ingress accepts, held only as SHA-256 digests.

A keys document (YAML or JSON) - the content of ``security.keys_file`` or of the environment
variable named by ``security.keys_env``::

    keys:
      - owner: alice                     # the identity sessions and cached prefixes belong to
        sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
        admin: true                      # may use /admin routes (default false)
      - owner: bob
        sha256: ...

Several keys may share one owner (a rotation overlap, or a team that shares its sessions and
prefix cache on purpose). A presented key is hashed and compared in constant time
(``hmac.compare_digest``) against every stored digest. The plain key never needs to be stored
anywhere kvfleet reads; ``python -m deployments.ingress.auth.api_keys new alice --admin`` mints a key and
prints the entry to paste.

Rotation without restart: ``keys_file`` is re-read when its modification time (or size) changes,
checked at most every ``security.reload_s`` seconds; a removed key stops working at the next
check. A file that becomes unreadable or invalid keeps the last good keys (logged). ``keys_env``
is read once: rotating keys given that way needs a restart.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from deployments.ingress.auth.config import SecurityConfig

log = logging.getLogger(__name__)


class KeysConfigError(ValueError):
    """A keys document is missing, unreadable or malformed (the message names the source)."""


def key_digest(key: str) -> bytes:
    """SHA-256 of the key's UTF-8 bytes (32 bytes)."""
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True)
class KeyEntry:
    """One accepted key: its SHA-256 digest, the owner it authenticates as, admin or not."""

    digest: bytes
    owner: str
    admin: bool = False


def parse_keys_document(text: str, source: str) -> list[KeyEntry]:
    """Entries of a keys document (see module docstring); raises KeysConfigError naming ``source``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KeysConfigError(f"{source}: not valid YAML/JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeysConfigError(f"{source}: expected a mapping with a 'keys' list")
    return [_entry(item, f"{source}: keys[{i}]") for i, item in enumerate(data["keys"])]


def _entry(item: Any, where: str) -> KeyEntry:
    if not isinstance(item, dict) or set(item) - {"owner", "sha256", "admin"}:
        raise KeysConfigError(f"{where}: expected {{owner, sha256, admin?}}, got {item!r:.80}")
    owner, digest = item.get("owner"), item.get("sha256")
    if not isinstance(owner, str) or not owner.strip():
        raise KeysConfigError(f"{where}: 'owner' must be a non-empty string")
    try:
        raw = bytes.fromhex(str(digest))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise KeysConfigError(f"{where}: 'sha256' must be the 64-hex-digit SHA-256 of the key "
                              "(python -m deployments.ingress.auth.api_keys hash <key>)")
    return KeyEntry(raw, owner.strip(), bool(item.get("admin", False)))


class KeyRing:
    """The accepted keys, from inline plain keys + ``keys_file`` + ``keys_env`` (all merged).

    ``enabled`` is False when no source gives any key (auth off). Thread-safe. ``clock`` is
    injectable for tests. Raises KeysConfigError at construction when a configured source is
    missing or invalid: a server told to use keys must not start open.
    """

    def __init__(self, config: SecurityConfig, clock: Callable[[], float] = time.monotonic):
        self.config, self.clock = config, clock
        self._lock = threading.Lock()
        self._inline = [KeyEntry(key_digest(k), owner, k in config.admin_keys) for k, owner in config.api_keys.items()]
        self._env = self._read_env()
        self._file: list[KeyEntry] = []
        self._file_stamp: tuple[float, int] | None = None
        self._checked_at = clock()
        self.reloads = 0
        if config.keys_file:
            self._file, self._file_stamp = self._read_file()
        if config.external and not self.entries():
            raise KeysConfigError("security.keys_file / keys_env is set but holds no key; refusing to start "
                                  "without authentication")

    # ---- sources -------------------------------------------------------------------------
    def _read_env(self) -> list[KeyEntry]:
        name = self.config.keys_env
        if not name:
            return []
        text = os.environ.get(name)
        if text is None:
            raise KeysConfigError(f"security.keys_env names {name!r}, which is not set in the environment")
        return parse_keys_document(text, f"environment variable {name}")

    def _read_file(self) -> tuple[list[KeyEntry], tuple[float, int]]:
        path = Path(self.config.keys_file or "")
        try:
            stat = path.stat()
            text = path.read_text()
        except OSError as exc:
            raise KeysConfigError(f"security.keys_file {str(path)!r} cannot be read: {exc.strerror}") from None
        return parse_keys_document(text, str(path)), (stat.st_mtime, stat.st_size)

    def _maybe_reload(self) -> None:
        if not self.config.keys_file or self.clock() - self._checked_at < self.config.reload_s:
            return
        with self._lock:
            if self.clock() - self._checked_at < self.config.reload_s:
                return
            self._checked_at = self.clock()
            try:
                stat = os.stat(self.config.keys_file)
                if (stat.st_mtime, stat.st_size) == self._file_stamp:
                    return
                self._file, self._file_stamp = self._read_file()
                self.reloads += 1
                log.info("API keys reloaded from %s (%d keys)", self.config.keys_file, len(self._file))
            except (OSError, KeysConfigError) as exc:
                log.error("API keys file could not be reloaded, keeping the previous keys: %s", exc)

    # ---- queries -------------------------------------------------------------------------
    def entries(self) -> list[KeyEntry]:
        return [*self._inline, *self._env, *self._file]

    @property
    def enabled(self) -> bool:
        """Auth is on: inline keys, or a keys file / variable configured (even if a reload emptied it:
        then every key is refused - never open)."""
        return bool(self._inline) or self.config.external

    def match(self, key: str) -> KeyEntry | None:
        """The entry whose digest equals the key's; every entry is compared (constant time each)."""
        self._maybe_reload()
        digest = key_digest(key)
        found = None
        for entry in self.entries():
            if hmac.compare_digest(entry.digest, digest) and found is None:
                found = entry
        return found


def main(argv: list[str] | None = None) -> None:
    """``python -m deployments.ingress.auth.api_keys new <owner> [--admin] [--keys-file keys.yaml]`` | ``hash <key>``."""
    parser = argparse.ArgumentParser(prog="python -m deployments.ingress.auth.api_keys", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="mint a key; prints it, then the keys-file entry holding its hash")
    new.add_argument("owner")
    new.add_argument("--admin", action="store_true")
    new.add_argument("--keys-file", help="append the entry to this keys document (created if missing) and "
                                         "print only the key")
    sub.add_parser("hash", help="print the SHA-256 of a key").add_argument("key")
    args = parser.parse_args(argv)
    if args.command == "hash":
        print(key_digest(args.key).hex())
        return
    key = "kvf-" + secrets.token_urlsafe(32)
    entry = {"owner": args.owner, "sha256": key_digest(key).hex(), "admin": args.admin}
    if args.keys_file:
        path = Path(args.keys_file)
        document = yaml.safe_load(path.read_text()) if path.exists() else None
        document = document or {"keys": []}
        parse_keys_document(yaml.safe_dump(document), str(path))  # refuse to extend a broken file
        document["keys"].append(entry)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        print(key)
        return
    print(f"key: {key}")
    print(yaml.safe_dump({"keys": [entry]}, sort_keys=False).rstrip())


if __name__ == "__main__":
    main()
