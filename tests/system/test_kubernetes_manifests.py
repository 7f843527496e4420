"""packaging/kubernetes/wsgid.yaml: valid for Kubernetes, offline, and its numbers fit wsgid.

kubernetes-validate carries the API schemas of each Kubernetes release, so the manifests are
checked strictly (an unknown or misspelt field is an error) with no cluster and no network.
Then what a schema cannot know: the container's WSGID_* variables are settings wsgid accepts,
the probes ask the side listener for /livez and /readyz, the grace period covers the drain
and the graceful stop, and the memory limit holds the workers at their recycling size.
The image running this container's environment is tests/system/test_packaging_image.py's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from wsgid.settings import load_settings

MANIFEST = Path(__file__).resolve().parents[2] / "packaging" / "kubernetes" / "wsgid.yaml"
# What the master and the memory a worker may reach before it is recycled leave room for.
MASTER_MIB = 64


def documents() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]


def container() -> tuple[dict[str, Any], dict[str, Any]]:
    """(the Deployment's pod spec, its one container)."""
    (deployment,) = [d for d in documents() if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return pod, only


def test_every_manifest_passes_strict_validation_offline() -> None:
    kinds = []
    for doc in documents():
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["Deployment", "PodDisruptionBudget", "Service"]


def test_the_validator_refuses_a_misspelt_field() -> None:
    """The check above can fail: strict validation knows the fields of each kind."""
    pod, _ = container()
    (deployment,) = [d for d in documents() if d["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)
    assert "terminationGracePeriod" not in pod


def test_the_container_environment_is_settings_wsgid_accepts() -> None:
    _, box = container()
    env = {item["name"]: item["value"] for item in box["env"]}
    settings = load_settings([], env).settings  # a ConfigError fails the test
    assert settings.metrics_bind is not None and settings.shutdown_delay > 0
    assert settings.max_worker_memory > 0


def test_probes_ask_the_side_listener_and_the_times_and_sizes_fit() -> None:
    pod, box = container()
    settings = load_settings([], {i["name"]: i["value"] for i in box["env"]}).settings
    ports = {p["name"]: p["containerPort"] for p in box["ports"]}
    assert settings.metrics_bind is not None
    assert ports["health"] == int(settings.metrics_bind.rpartition(":")[2])
    assert ports["http"] == int(settings.bind[0].rpartition(":")[2])
    probes = {kind: box[f"{kind}Probe"]["httpGet"] for kind in ("startup", "readiness", "liveness")}
    assert {kind: (p["path"], p["port"]) for kind, p in probes.items()} == {
        "startup": ("/readyz", "health"),
        "readiness": ("/readyz", "health"),
        "liveness": ("/livez", "health"),
    }
    # The kubelet SIGKILLs after the grace period: it must cover the drain and the stop.
    assert (
        pod["terminationGracePeriodSeconds"] > settings.shutdown_delay + settings.graceful_timeout
    )
    # Every worker at its recycling size, and the master, fit under the memory limit.
    limit = mebibytes(box["resources"]["limits"]["memory"])
    assert limit >= settings.workers * settings.max_worker_memory + MASTER_MIB
    assert box["securityContext"]["readOnlyRootFilesystem"] is True


def mebibytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)(Mi|Gi)", quantity)
    assert match, f"memory quantity {quantity!r}: use Mi or Gi"
    return int(match.group(1)) * (1024 if match.group(2) == "Gi" else 1)
