"""deployments: the Ray Serve layer, one folder per process or role (docs/architecture.md).

``ingress/`` (HTTP, one folder per API), ``serving/`` (the Replica deployment and its actors),
``control/`` (the control shell), ``common/`` (used by more than one role), ``engine/`` (the model
runtime, no Ray), ``litellm_router/`` (LiteLLM hooks). The only package that imports ray.serve.
"""
