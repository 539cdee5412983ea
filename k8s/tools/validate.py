"""Render kustomize overlays and validate every manifest offline:
``python k8s/tools/validate.py k8s/overlays/cpu k8s/overlays/gpu`` (exit 1 on any error).

- RayService: KubeRay's CRD schema (k8s/schemas/rayservice-v1.openapi.json) converted to JSON
  Schema as the API server applies it with ``kubectl --validate=strict``: CRD defaults applied
  first, unknown fields rejected (objects without ``x-kubernetes-preserve-unknown-fields``),
  ``x-kubernetes-int-or-string``, ``nullable``, int32/int64 ranges, embedded resources. CEL rules
  (``x-kubernetes-validations``) are not evaluated. Its ``serveConfigV2`` must parse, and each
  application's ``args`` must validate as kvfleet's ``AppConfig``. Security: every application
  must read API keys from a Secret (``security.keys_file`` in a directory every Ray pod mounts from a
  ``secret`` volume, or ``security.keys_env`` set from a ``secretKeyRef`` in every Ray container),
  and none may carry plain keys (``security.api_keys``): admin routes are never open.
- Deployment, Service, ConfigMap, PersistentVolumeClaim (any core kind): the strict JSON schemas
  of the PyPI package ``kubernetes-validate`` for Kubernetes ``K8S_VERSION``.

Rendering runs ``kustomize build`` or ``kubectl kustomize`` (whichever is installed).
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
RAYSERVICE_SCHEMA = ROOT / "k8s" / "schemas" / "rayservice-v1.openapi.json"
K8S_VERSION = "1.32.0"
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_EMBEDDED = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
_OBJECT_META = {"type": "object", "properties": {
    "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
    "namespace": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}, "required": ["name"]}


class RenderError(RuntimeError):
    """kustomize is missing or failed; the message says which and what it printed."""


# ---- rendering ------------------------------------------------------------------------------------

def kustomize_command() -> list[str] | None:
    """``kustomize build`` or ``kubectl kustomize``, whichever is installed; None when neither is."""
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def render(overlay: str | Path) -> list[dict[str, Any]]:
    """The manifests ``kustomize build <overlay>`` produces. Raises RenderError."""
    command = kustomize_command()
    if command is None:
        raise RenderError("neither kustomize nor kubectl is installed; install one (kubectl >= 1.27 includes "
                          "kustomize v5) to render k8s/overlays")
    result = subprocess.run([*command, str(overlay)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RenderError(f"{' '.join(command)} {overlay} failed:\n{result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


# ---- OpenAPI (CRD structural schema) -> JSON Schema ----------------------------------------------

def to_json_schema(node: Any) -> Any:
    """One CRD openAPIV3Schema node as a strict JSON Schema node (see the module docstring)."""
    if not isinstance(node, dict):
        return node
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-") and k not in ("nullable", "default")}
    if "properties" in node:
        out["properties"] = {k: to_json_schema(v) for k, v in node["properties"].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), dict):
            out[key] = to_json_schema(node[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in node:
            out[key] = [to_json_schema(v) for v in node[key]]
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if node.get("type") == "integer" and node.get("format") in _INT_RANGES:
        low, high = _INT_RANGES[node["format"]]
        out.setdefault("minimum", low)
        out.setdefault("maximum", high)
    if node.get("x-kubernetes-embedded-resource"):
        out["properties"] = {**_EMBEDDED, **out.get("properties", {})}
    if node.get("type") == "object" and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False  # strict: an unknown field is an error
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def apply_defaults(schema: dict[str, Any], data: Any) -> Any:
    """A copy of ``data`` with every CRD ``default`` filled in where the field is absent."""
    data = copy.deepcopy(data)
    _fill(schema, data)
    return data


def _fill(schema: dict[str, Any], data: Any) -> None:
    if isinstance(data, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in data and "default" in sub:
                data[name] = copy.deepcopy(sub["default"])
            if name in data:
                _fill(sub, data[name])
        if isinstance(schema.get("additionalProperties"), dict):
            for name, value in data.items():
                if name not in schema.get("properties", {}):
                    _fill(schema["additionalProperties"], value)
    elif isinstance(data, list) and isinstance(schema.get("items"), dict):
        for item in data:
            _fill(schema["items"], item)


@functools.cache
def _rayservice() -> tuple[dict[str, Any], jsonschema.protocols.Validator]:
    vendored = json.loads(RAYSERVICE_SCHEMA.read_text())
    openapi = vendored["openAPIV3Schema"]
    schema = to_json_schema(openapi)
    schema["properties"]["metadata"] = _OBJECT_META
    schema["properties"]["apiVersion"] = {"const": f"{vendored['group']}/{vendored['version']}"}
    schema["properties"]["kind"] = {"const": vendored["kind"]}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return openapi, validator_class(schema)


# ---- validation ---------------------------------------------------------------------------------

def _where(error: jsonschema.ValidationError) -> str:
    return "/".join(str(p) for p in error.absolute_path) or "(root)"


def validate_rayservice(doc: dict[str, Any]) -> list[str]:
    """Errors of one RayService against the CRD schema, then of its serveConfigV2."""
    openapi, validator = _rayservice()
    errors = [f"RayService/{doc.get('metadata', {}).get('name')}: {_where(e)}: {e.message}"
              for e in sorted(validator.iter_errors(apply_defaults(openapi, doc)), key=lambda e: list(e.path))]
    serve = (doc.get("spec") or {}).get("serveConfigV2")
    if isinstance(serve, str):
        errors += validate_serve_config(serve)
        errors += validate_keys_from_secrets(doc, serve)
    return errors


def _ray_pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    cluster = (doc.get("spec") or {}).get("rayClusterConfig") or {}
    groups = [cluster.get("headGroupSpec") or {}] + list(cluster.get("workerGroupSpecs") or [])
    return [(g.get("template") or {}).get("spec") or {} for g in groups]


def validate_keys_from_secrets(doc: dict[str, Any], serve_text: str) -> list[str]:
    """Every application authenticates with keys read from a Secret, never plain keys (see module doc)."""
    try:
        serve = yaml.safe_load(serve_text)
    except yaml.YAMLError:
        return []  # reported by validate_serve_config
    errors, pods = [], _ray_pod_specs(doc)
    for app in (serve or {}).get("applications") or []:
        security = (app.get("args") or {}).get("security") or {}
        name = f"serveConfigV2 application {app.get('name')!r}"
        if security.get("api_keys") or security.get("admin_keys"):
            errors.append(f"{name}: plain API keys in security.api_keys; put SHA-256 digests in a Secret and set "
                          "security.keys_file (docs/deploy-kubernetes.md)")
        if not (security.get("keys_file") or security.get("keys_env")):
            errors.append(f"{name}: no API keys (security.keys_file / keys_env): its admin routes would be open")
        if security.get("keys_file"):
            errors += [f"{name}: {e}" for e in _secret_mounted(pods, str(Path(security["keys_file"]).parent))]
        if security.get("keys_env"):
            errors += [f"{name}: {e}" for e in _secret_env(pods, security["keys_env"])]
    return errors


def _secret_mounted(pods: list[dict[str, Any]], directory: str) -> list[str]:
    errors = []
    for i, pod in enumerate(pods):
        secrets = {v.get("name") for v in pod.get("volumes") or [] if "secret" in v}
        for container in pod.get("containers") or []:
            mounted = {m.get("mountPath"): m.get("name") for m in container.get("volumeMounts") or []}
            if mounted.get(directory) not in secrets:
                errors.append(f"keys_file directory {directory} is not a Secret volume mount in container "
                              f"{container.get('name')!r} of Ray group {i}")
    return errors


def _secret_env(pods: list[dict[str, Any]], variable: str) -> list[str]:
    errors = []
    for i, pod in enumerate(pods):
        for container in pod.get("containers") or []:
            env = {e.get("name"): e for e in container.get("env") or []}
            if "secretKeyRef" not in ((env.get(variable) or {}).get("valueFrom") or {}):
                errors.append(f"keys_env {variable} is not set from a secretKeyRef in container "
                              f"{container.get('name')!r} of Ray group {i}")
    return errors


def validate_serve_config(text: str) -> list[str]:
    """serveConfigV2 must be a Serve config whose applications' args are valid AppConfig."""
    from pydantic import ValidationError

    from deployments.config import AppConfig

    try:
        serve = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"serveConfigV2 is not YAML: {exc}"]
    if not isinstance(serve, dict) or not serve.get("applications"):
        return ["serveConfigV2 has no applications"]
    errors = []
    for app in serve["applications"]:
        try:
            AppConfig.model_validate(app.get("args") or {})
        except ValidationError as exc:
            errors.append(f"serveConfigV2 application {app.get('name')!r}: args are not a valid AppConfig: {exc}")
    return errors


def validate_core(doc: dict[str, Any], k8s_version: str = K8S_VERSION) -> list[str]:
    """Errors of one core Kubernetes object (strict schemas of ``kubernetes-validate``)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(doc, k8s_version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {_where(exc)}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{doc.get('kind')}: no schema for {doc.get('apiVersion')} in Kubernetes {k8s_version}: {exc}"]
    return []


def validate(doc: dict[str, Any]) -> list[str]:
    """Every error of one manifest (empty: valid)."""
    if doc.get("apiVersion", "").startswith("ray.io/"):
        if doc.get("kind") != "RayService":
            return [f"{doc.get('kind')}: only RayService is vendored under k8s/schemas"]
        return validate_rayservice(doc)
    return validate_core(doc)


def main(overlays: list[str]) -> int:
    failed = False
    for overlay in overlays or [str(p) for p in sorted((ROOT / "k8s" / "overlays").iterdir())]:
        docs = render(overlay)
        errors = [e for doc in docs for e in validate(doc)]
        failed |= bool(errors)
        print(f"{overlay}: {len(docs)} manifests, " + ("valid" if not errors else f"{len(errors)} errors"))
        for error in errors:
            print(f"  {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
