"""Request guards: per-field limits, body size, context length - checked before any work."""
