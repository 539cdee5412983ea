"""Model and press discovery: ``/v1/models``, ``/v1/presses``, ``/health``."""
