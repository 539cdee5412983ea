"""Durable store of session records and admin events: interface, SQLite (default), memory (tests)."""

from control_plane.store.base import SessionStore
from control_plane.store.memory import MemorySessionStore
from control_plane.store.registry import STORES, open_store
from control_plane.store.sqlite import SQLiteSessionStore

__all__ = ["MemorySessionStore", "SQLiteSessionStore", "STORES", "SessionStore", "open_store"]
