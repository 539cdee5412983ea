"""SecurityConfig: where API keys come from (``AppConfig.security``).

Keys never need to sit in plain text in a Serve config or a RayService: give ``keys_file`` (a
file, e.g. a Kubernetes Secret mounted read-only) or ``keys_env`` (an environment variable, e.g.
set from a Secret) holding a keys document with **SHA-256 hashes** of the keys (see
deployments/ingress/auth/api_keys.py for the format and ``python -m deployments.ingress.auth.api_keys new <owner>`` to
mint one). ``api_keys`` / ``admin_keys`` (plain keys inline) remain for local development and
tests only. With no key from any source, auth is off (every caller is the owner ``anonymous``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class SecurityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_keys: dict[str, str] = Field(default_factory=dict,
                                     description="plain api key -> owner name (local development and tests only)")
    admin_keys: list[str] = Field(default_factory=list, description="plain keys allowed on /admin routes")
    keys_file: str | None = Field(default=None, description="path of a keys document (hashed keys); re-read "
                                                            "when it changes, so keys rotate without a restart")
    keys_env: str | None = Field(default=None, description="name of an environment variable holding a keys "
                                                           "document (read once at start)")
    reload_s: float = Field(default=5.0, gt=0, description="how often keys_file's modification time is checked")

    @model_validator(mode="after")
    def _admin_keys_are_keys(self) -> "SecurityConfig":
        if any(k not in self.api_keys for k in self.admin_keys):
            raise ValueError("every admin key must also be listed in security.api_keys")
        return self

    @property
    def external(self) -> bool:
        """True when keys come from a file or an environment variable (not inline)."""
        return bool(self.keys_file or self.keys_env)
