"""API keys: who is calling, and may they use admin routes.

With no keys configured every caller is the owner ``anonymous`` and admin routes are open
(a local development setup). With keys, every request needs ``Authorization: Bearer <key>``;
sessions belong to the key's owner, and other owners get 404 for them.
"""

from __future__ import annotations

import hmac

from control_plane.ids import ANONYMOUS_OWNER
from deployments.config import SecurityConfig
from deployments.errors import APIError


class Authenticator:
    def __init__(self, config: SecurityConfig):
        self.config = config

    def _key(self, authorization: str | None, api_key_header: str | None) -> str | None:
        if api_key_header:
            return api_key_header.strip()
        if authorization and authorization.lower().startswith("bearer "):
            return authorization[7:].strip()
        return None

    def owner(self, authorization: str | None, api_key_header: str | None = None) -> str:
        """The caller's owner name; APIError 401 when keys are configured and this one is unknown."""
        if not self.config.api_keys:
            return ANONYMOUS_OWNER
        key = self._key(authorization, api_key_header)
        if key is None:
            raise APIError(401, "missing API key: send 'Authorization: Bearer <key>'", "missing_api_key")
        for known, owner in self.config.api_keys.items():
            if hmac.compare_digest(known, key):
                return owner
        raise APIError(401, "invalid API key", "invalid_api_key")

    def require_admin(self, authorization: str | None, api_key_header: str | None = None) -> str:
        owner = self.owner(authorization, api_key_header)
        if not self.config.api_keys:
            return owner
        key = self._key(authorization, api_key_header)
        if not any(hmac.compare_digest(admin, key or "") for admin in self.config.admin_keys):
            raise APIError(403, "this API key may not use admin routes", "admin_required")
        return owner
