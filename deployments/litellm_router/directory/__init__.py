"""Session directories: where the router remembers each session's home, copies and context."""

from deployments.litellm_router.directory.base import SessionDirectory, SessionRoute
from deployments.litellm_router.directory.registry import STORES, make_directory

__all__ = ["STORES", "SessionDirectory", "SessionRoute", "make_directory"]
