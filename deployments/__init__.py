"""deployments: the Ray Serve layer (ingress, control plane shell, replicas) and the model engine.

The only package that imports ray.serve. ``deployments.engine`` holds the model runtime (no Ray).
"""
