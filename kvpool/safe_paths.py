"""The one rule for names that arrive from outside and end up on a file system.

A request may *name* a file (a trained scorer's weights for a press, say), but it never chooses a
path: the name is resolved only under a directory the operator configured, and anything that
could leave it - an absolute path, ``..``, a symlink pointing out, a URL or hub id, a drive letter,
a NUL byte - is refused before the file system is touched beyond ``resolve()``. The same check
guards storage keys that become file names (``kvpool.disk_store``).

Callers wrap ``UnsafeNameError`` into their own API error (a press artifact -> 422
``invalid_press``); on its own it maps to 400 (it is a ``KVFleetError``).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from kvpool.errors import KVFleetError

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_NAME_CHARS = 512


class UnsafeNameError(KVFleetError, ValueError):
    """A name from outside would leave its directory or is not a plain relative name."""


def safe_key(key: str, what: str = "storage key") -> str:
    """``key`` if it is one plain file-name component (letters, digits, ``.``, ``_``, ``-``; no
    leading dot; at most 200 chars), else UnsafeNameError. Used for keys that become file names."""
    if not isinstance(key, str) or not _KEY.match(key) or ".." in key:
        raise UnsafeNameError(f"{what} {key!r:.80} is not a plain name (letters, digits, '.', '_', '-')")
    return key


def resolve_under(root: Path | str | None, name: str, what: str = "artifact") -> Path:
    """The existing file or directory ``root/name``, for a relative ``name`` given by a client.

    ``name``: components separated by ``/``, each a plain name (see ``safe_key``); no absolute
    paths, ``..``, backslashes, ``scheme://`` or ``org/model@rev``-style hub references. ``root``:
    the operator's directory; None means the feature is off and every name is refused.
    Raises UnsafeNameError (no root configured, unsafe name, escapes root via a symlink, missing).
    """
    if root is None:
        raise UnsafeNameError(f"{what}s are not enabled on this server (the operator sets a directory for them)")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_CHARS:
        raise UnsafeNameError(f"{what} name must be a non-empty string of at most {MAX_NAME_CHARS} characters")
    parts = PurePosixPath(name).parts
    if "\\" in name or name.startswith("/") or not parts or not all(_PART.match(p) for p in parts):
        raise UnsafeNameError(f"{what} {name!r:.80} is not a relative name under the {what} directory "
                              "(plain components separated by '/', no '..', no absolute path or URL)")
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if not target.is_relative_to(base):
        raise UnsafeNameError(f"{what} {name!r:.80} points outside the {what} directory")
    if not target.exists():
        raise UnsafeNameError(f"{what} {name!r:.80} does not exist in the {what} directory")
    return target
