"""The serving replica: the Replica deployment, its prefill/prune and decode actors, session table,
prefix cache. Imports deployments.engine, deployments.common, config - never ingress or control."""

from deployments.serving.start_priority import lower_if_asked

lower_if_asked()  # a restarted actor's process: below live work before its module imports torch
