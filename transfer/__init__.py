"""transfer: moving packed CompressedKV between actors and nodes.

One interface (base.py), one file per backend, a registry by name, pollable tickets.
May import kvpool and ray core; never ray.serve.
"""
