"""The HTTP process: one folder per API (routes, schemas, replies together), guards, auth, errors.

Imports deployments.common, deployments.engine (tokenizer, press registry), config - never serving or control."""
