"""control_plane: pure decisions about sessions and replicas (registry, placement, migration,
durable store). May import kvpool and transfer; never ray.serve, and is testable without Ray.
"""
