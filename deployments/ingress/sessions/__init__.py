"""Sessions API: ``/v1/sessions`` - load a context once, list, get, update, delete."""
