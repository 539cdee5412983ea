"""API keys: who is calling, and may they use admin routes.

With no key configured (deployments.ingress.auth.config) every caller is the owner ``anonymous`` and
admin routes are open (a local development setup). With keys, every request needs
``Authorization: Bearer <key>`` (or ``X-Api-Key``); the key is checked against stored SHA-256
digests in constant time (deployments.ingress.auth.api_keys.KeyRing). Sessions and cached prefixes belong to
the key's owner; other owners get 404 for them and never reuse their prefixes.
"""

from __future__ import annotations

from control_plane.ids import ANONYMOUS_OWNER
from deployments.ingress.auth.api_keys import KeyEntry, KeyRing
from deployments.ingress.errors import APIError
from deployments.ingress.auth.config import SecurityConfig


class Authenticator:
    def __init__(self, config: SecurityConfig):
        self.config = config
        self.keys = KeyRing(config)

    @staticmethod
    def _key(authorization: str | None, api_key_header: str | None) -> str | None:
        if api_key_header:
            return api_key_header.strip()
        if authorization and authorization.lower().startswith("bearer "):
            return authorization[7:].strip()
        return None

    def _entry(self, authorization: str | None, api_key_header: str | None) -> KeyEntry | None:
        """The caller's key entry; None when auth is off; APIError 401 for a missing or unknown key."""
        if not self.keys.enabled:
            return None
        key = self._key(authorization, api_key_header)
        if not key:
            raise APIError(401, "missing API key: send 'Authorization: Bearer <key>'", "missing_api_key")
        entry = self.keys.match(key)
        if entry is None:
            raise APIError(401, "invalid API key", "invalid_api_key")
        return entry

    def owner(self, authorization: str | None, api_key_header: str | None = None) -> str:
        """The caller's owner name; APIError 401 when keys are configured and this one is unknown."""
        entry = self._entry(authorization, api_key_header)
        return ANONYMOUS_OWNER if entry is None else entry.owner

    def require_admin(self, authorization: str | None, api_key_header: str | None = None) -> str:
        """The caller's owner if it may use admin routes; APIError 401 (bad key) / 403 (not admin)."""
        entry = self._entry(authorization, api_key_header)
        if entry is None:
            return ANONYMOUS_OWNER
        if not entry.admin:
            raise APIError(403, "this API key may not use admin routes", "admin_required")
        return entry.owner
