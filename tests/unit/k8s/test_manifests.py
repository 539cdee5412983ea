"""k8s/: the overlays render with kustomize, every manifest validates offline (KubeRay's CRD schema,
Kubernetes' strict core schemas, kvfleet's AppConfig for serveConfigV2), the generated files match
configs/, and broken manifests are rejected."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
OVERLAYS = ("cpu", "gpu", "cpu-gcs-ft")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"k8s_tools_{name}", ROOT / "k8s" / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


validate = _load("validate")
generate = _load("generate")
HAVE_CORE_SCHEMAS = importlib.util.find_spec("kubernetes_validate") is not None
CORE_SCHEMAS_MISSING = "core Kubernetes schemas need: pip install kubernetes-validate==1.37.0"


def _validate(doc: dict) -> list[str]:
    """validate.validate, skipping the test for a core kind when kubernetes-validate is missing."""
    if not doc.get("apiVersion", "").startswith("ray.io/") and not HAVE_CORE_SCHEMAS:
        pytest.skip(CORE_SCHEMAS_MISSING)
    return validate.validate(doc)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    if validate.kustomize_command() is None:
        pytest.skip("neither kustomize nor kubectl (which includes kustomize) is installed")
    return {name: validate.render(ROOT / "k8s" / "overlays" / name) for name in OVERLAYS}


def _one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))]
    assert len(found) == 1, (kind, name, [d["metadata"]["name"] for d in found])
    return found[0]


def _containers(doc: dict) -> list[dict]:
    if doc["kind"] == "RayService":
        cluster = doc["spec"]["rayClusterConfig"]
        templates = [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster.get("workerGroupSpecs", [])]
    elif doc["kind"] == "Deployment":
        templates = [doc["spec"]["template"]]
    else:
        return []
    return [c for t in templates for c in t["spec"]["containers"]]


# ---- rendering and validity ----------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_every_manifest_validates(rendered, overlay):
    docs = rendered[overlay]
    kinds = {d["kind"] for d in docs}
    assert {"RayService", "Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= kinds, kinds
    rayservice_errors = [e for doc in docs if doc["kind"] == "RayService" for e in validate.validate(doc)]
    assert rayservice_errors == []
    errors = [e for doc in docs for e in _validate(doc)]
    assert errors == []


def test_generated_files_match_configs():
    assert generate.stale() == [], "run: python k8s/tools/generate.py"


def test_serve_config_is_the_application_of_configs_cluster_yaml(rendered):
    cluster = yaml.safe_load((ROOT / "configs" / "cluster.yaml").read_text())
    serve = yaml.safe_load(_one(rendered["cpu"], "RayService")["spec"]["serveConfigV2"])
    assert len(serve["applications"]) == len(cluster["applications"])
    for app, expected in zip(serve["applications"], cluster["applications"]):
        app, expected = copy.deepcopy(app), copy.deepcopy(expected)
        assert app["args"]["control"].pop("store_path").startswith("/data/kvfleet/")  # on the session-store PVC
        assert app["args"].pop("security") == {"keys_file": "/etc/kvfleet/keys/keys.yaml"}  # hashed keys, a Secret
        expected["args"]["control"].pop("store_path")
        assert app == expected
    assert serve["http_options"] == {**cluster["http_options"], "host": "0.0.0.0", "port": 8000}


def test_session_store_pvc_is_mounted_where_the_control_store_lives(rendered):
    for overlay in OVERLAYS:
        rayservice = _one(rendered[overlay], "RayService")
        cluster = rayservice["spec"]["rayClusterConfig"]
        for template in [cluster["headGroupSpec"]["template"]] + [g["template"] for g in cluster["workerGroupSpecs"]]:
            claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in template["spec"]["volumes"]
                      if "persistentVolumeClaim" in v}
            mounts = {m["mountPath"]: m["name"] for m in template["spec"]["containers"][0]["volumeMounts"]}
            assert claims[mounts["/data/kvfleet"]] == "kvfleet-session-store", overlay
        _one(rendered[overlay], "PersistentVolumeClaim", "kvfleet-session-store")


def test_every_container_has_requests_and_limits(rendered):
    for overlay, docs in rendered.items():
        for doc in docs:
            for container in _containers(doc):
                resources = container.get("resources", {})
                assert resources.get("requests") and resources.get("limits"), (overlay, container["name"])
                assert {"cpu", "memory"} <= set(resources["limits"]), (overlay, container["name"])


def test_workers_are_ready_through_the_serve_health_route(rendered):
    for overlay in OVERLAYS:
        for group in _one(rendered[overlay], "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
            probe = group["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
            assert probe == {"path": "/health", "port": 8000}, overlay


def test_gpu_overlay_asks_for_gpus_and_sets_transfer_settings(rendered):
    rayservice = _one(rendered["gpu"], "RayService")
    (group,) = rayservice["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    container = group["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert {"NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE", "UCX_TLS"} <= set(env), env
    assert any(m["mountPath"] == "/models" and m.get("readOnly") for m in container["volumeMounts"])
    _one(rendered["gpu"], "PersistentVolumeClaim", "kvfleet-models")
    serve = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    for app in serve["applications"]:
        assert app["args"]["model"]["device"] == "cuda" and app["args"]["model"]["model_id"].startswith("/models/")
        assert app["args"]["replicas"]["num_gpus"] == 1
        assert app["args"]["transfer"]["backend"] in ("nixl", "collective")
    assert not any(c["resources"]["limits"].get("nvidia.com/gpu") for c in _containers(rayservice)[:1])  # head
    cpu_group = _one(rendered["cpu"], "RayService")["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert "nvidia.com/gpu" not in cpu_group["template"]["spec"]["containers"][0]["resources"]["limits"]


def test_gcs_fault_tolerance_overlay_points_the_head_at_redis(rendered):
    docs = rendered["cpu-gcs-ft"]
    options = _one(docs, "RayService")["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    redis_service = _one(docs, "Service", "kvfleet-redis")
    assert options["redisAddress"] == f"redis://{redis_service['metadata']['name']}:6379"
    assert options["redisPassword"]["valueFrom"]["secretKeyRef"]["name"] == "kvfleet-redis"
    _one(docs, "Deployment", "kvfleet-redis")
    assert "gcsFaultToleranceOptions" not in _one(rendered["cpu"], "RayService")["spec"]["rayClusterConfig"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_litellm_proxy_points_at_the_rayservice_serve_service(rendered, overlay):
    docs = rendered[overlay]
    config_map = _one(docs, "ConfigMap", "kvfleet-litellm-config")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    rayservice = _one(docs, "RayService")
    serve = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    served = {app["args"]["model"].get("served_name") or app["args"]["model"]["model_id"] for app in serve["applications"]}
    for deployment in config["model_list"]:
        assert deployment["litellm_params"]["api_base"].startswith(f"http://{rayservice['metadata']['name']}-serve-svc:8000")
        assert deployment["litellm_params"]["model"].split("/", 1)[1] in served
    assert config["litellm_settings"]["callbacks"] == ["deployments.litellm_router.proxy_hooks.proxy_hooks"]
    proxy = _one(docs, "Deployment", "kvfleet-litellm")
    volumes = {v["name"]: v for v in proxy["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]  # kustomize's hashed name
    assert config["kvfleet_router"]["directory"]["path"].startswith("/data/litellm/")
    service = _one(docs, "Service", "kvfleet-litellm")
    assert service["spec"]["selector"] == proxy["spec"]["selector"]["matchLabels"]


# ---- broken manifests are rejected ---------------------------------------------------------------

def _broken(docs: list[dict], kind: str, name: str, edit) -> list[str]:
    doc = copy.deepcopy(_one(docs, kind, name))
    edit(doc)
    return _validate(doc)


def _worker(doc: dict) -> dict:
    return doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]


def _without_keys(serve_text: str) -> str:
    serve = yaml.safe_load(serve_text)
    for app in serve["applications"]:
        app["args"].pop("security", None)
    return yaml.safe_dump(serve)


def _with_plain_keys(serve_text: str) -> str:
    serve = yaml.safe_load(serve_text)
    for app in serve["applications"]:
        app["args"]["security"]["api_keys"] = {"sk-plain": "alice"}
    return yaml.safe_dump(serve)


BROKEN: dict[str, tuple[str, str, Any]] = {
    "rayservice wrong type": ("RayService", "kvfleet", lambda d: _worker(d).update(replicas="two")),
    "rayservice unknown field": ("RayService", "kvfleet",
                                 lambda d: d["spec"]["rayClusterConfig"]["headGroupSpec"].update(rayStartParam={})),
    "rayservice unknown field in pod template": (
        "RayService", "kvfleet", lambda d: _worker(d)["template"]["spec"]["containers"][0].update(imagePullPolicyy="x")),
    "rayservice int32 out of range": ("RayService", "kvfleet", lambda d: _worker(d).update(maxReplicas=2**31)),
    "rayservice bad quantity": ("RayService", "kvfleet", lambda d: _worker(d)["template"]["spec"]["containers"][0]
                                ["resources"]["limits"].update(cpu="four")),
    "rayservice missing required": ("RayService", "kvfleet", lambda d: _worker(d).pop("groupName")),
    "serveConfigV2 without API keys (open admin routes)": ("RayService", "kvfleet", lambda d: d["spec"].update(
        serveConfigV2=_without_keys(d["spec"]["serveConfigV2"]))),
    "serveConfigV2 with plain API keys": ("RayService", "kvfleet", lambda d: d["spec"].update(
        serveConfigV2=_with_plain_keys(d["spec"]["serveConfigV2"]))),
    "keys Secret not mounted on a worker": ("RayService", "kvfleet", lambda d: _worker(d)["template"]["spec"].update(
        volumes=[v for v in _worker(d)["template"]["spec"]["volumes"] if "secret" not in v])),
    "serveConfigV2 typo": ("RayService", "kvfleet", lambda d: d["spec"].update(
        serveConfigV2=d["spec"]["serveConfigV2"].replace("torch_threads:", "torch_thread:"))),
    "deployment wrong type": ("Deployment", "kvfleet-litellm", lambda d: d["spec"].update(replicas="1")),
    "deployment unknown field": ("Deployment", "kvfleet-litellm", lambda d: d["spec"].update(replica=1)),
    "deployment unknown nested field": ("Deployment", "kvfleet-litellm", lambda d: d["spec"]["template"]["spec"]
                                        ["containers"][0]["readinessProbe"].update(httpGett={})),
    "service port as text": ("Service", "kvfleet-litellm", lambda d: d["spec"]["ports"][0].update(port="http")),
    "configmap non-string data": ("ConfigMap", "kvfleet-litellm-config", lambda d: d["data"].update(n=3)),
    "pvc unknown field": ("PersistentVolumeClaim", "kvfleet-session-store", lambda d: d["spec"].update(size="1Gi")),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_manifest_is_rejected(rendered, case):
    kind, name, edit = BROKEN[case]
    assert _validate(_one(rendered["cpu"], kind, name)) == []  # the unbroken one passes
    errors = _broken(rendered["cpu"], kind, name, edit)
    assert errors, case


def test_crd_defaults_are_applied_before_validation(rendered):
    openapi, _ = validate._rayservice()
    doc = _one(rendered["cpu"], "RayService")
    filled = validate.apply_defaults(openapi, doc)
    head = filled["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert all(p["protocol"] == "TCP" for p in head["ports"])  # the CRD's default for containerPort protocol
    assert "protocol" not in doc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"][0]


def test_int_or_string_and_nullable_conversion():
    node = {"type": "object", "properties": {
        "q": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True},
        "n": {"type": "string", "nullable": True},
        "m": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    import jsonschema

    schema = validate.to_json_schema(node)
    check = jsonschema.Draft7Validator(schema)
    assert check.is_valid({"q": 2, "n": None, "m": {"any": 1}}) and check.is_valid({"q": "2Gi", "n": "x"})
    assert not check.is_valid({"q": [1]}) and not check.is_valid({"other": 1})
