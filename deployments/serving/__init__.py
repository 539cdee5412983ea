"""The serving replica: the Replica deployment, its prefill/prune and decode actors, session table,
prefix cache. Imports deployments.engine, deployments.common, config - never ingress or control."""
