"""API keys and who is calling (owner scoping, admin keys)."""
