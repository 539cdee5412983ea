"""Admin API (``/admin/...``, LMCache-controller style): routes and bodies."""
