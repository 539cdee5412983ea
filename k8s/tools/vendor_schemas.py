"""Vendor KubeRay's RayService schema: ``python k8s/tools/vendor_schemas.py <kuberay-crds dir>``.

Reads ``ray.io_rayservices.yaml`` (a KubeRay CustomResourceDefinition, unchanged from
ray-project/kuberay ``ray-operator/config/crd/bases/``), takes
``spec.versions[name=v1].schema.openAPIV3Schema``, drops the ``description`` texts (size only; no
constraint lives there) and writes ``k8s/schemas/rayservice-v1.openapi.json`` with the source file's
SHA-256. ``k8s/schemas/README.md`` records the KubeRay commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parents[1] / "schemas" / "rayservice-v1.openapi.json"


def without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        # "description" is a doc string, except where it is a property *named* description
        return {k: without_descriptions(v) for k, v in node.items()
                if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def main(crd_dir: str) -> int:
    source = Path(crd_dir) / "ray.io_rayservices.yaml"
    raw = source.read_bytes()
    crd = yaml.safe_load(raw)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    OUT.write_text(json.dumps({
        "source": {"file": "ray-operator/config/crd/bases/ray.io_rayservices.yaml",
                   "sha256": hashlib.sha256(raw).hexdigest(),
                   "controller_gen": crd["metadata"].get("annotations", {}).get("controller-gen.kubebuilder.io/version")},
        "group": crd["spec"]["group"], "kind": crd["spec"]["names"]["kind"], "version": "v1",
        "openAPIV3Schema": without_descriptions(version["schema"]["openAPIV3Schema"]),
    }, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/kuberay-crds"))
