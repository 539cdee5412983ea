"""build_app(args) -> the bound Serve application (the ``import_path`` of every Serve config).

Graph: Ingress(control, replicas) and ControlShell(replicas), with one Replica deployment per
configured replica (``replica-0`` ...). ``args`` is validated as AppConfig (closed: a typo fails
with the field's name).
"""

from __future__ import annotations

from typing import Any

from ray import serve

from deployments.config import AppConfig
from deployments.control.shell import ControlShell
from deployments.ingress.deployment import Ingress
from deployments.serving.replica import Replica


def build_app(args: dict[str, Any] | None = None) -> serve.Application:
    config = AppConfig.model_validate(args or {})
    config_json = config.model_dump(mode="json")
    rc = config.replicas
    replica_options = {"ray_actor_options": {"num_cpus": rc.num_cpus, "num_gpus": 0},
                       "max_ongoing_requests": rc.max_ongoing_requests,
                       "max_queued_requests": rc.max_queued_requests,
                       "health_check_period_s": 10, "health_check_timeout_s": 60,
                       "graceful_shutdown_timeout_s": 5}
    replicas = {}
    for i, name in enumerate(config.replica_names()):
        options = dict(replica_options)
        if i < len(rc.node_resources):
            options["ray_actor_options"] = {**options["ray_actor_options"], "resources": rc.node_resources[i]}
        replicas[name] = serve.deployment(Replica, name=name, num_replicas=1, **options).bind(config_json, name)
    control = serve.deployment(ControlShell, name="control", num_replicas=1, ray_actor_options={"num_cpus": 0},
                               max_ongoing_requests=1000,  # requests wait in locate() for recovering sessions
                               ).bind(config_json, replicas)
    ingress = serve.deployment(Ingress, name="ingress", num_replicas=1,
                               ray_actor_options={"num_cpus": 0}, max_ongoing_requests=1000
                               ).bind(config_json, control, replicas)
    return ingress


app = build_app  # `serve run deployments.app:build_app` also works
