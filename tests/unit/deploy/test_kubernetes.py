"""The Kubernetes overlays, rendered by `kubectl kustomize` and checked offline: every object
against the Kubernetes API's schemas (strict: no unknown field), the Prometheus Operator's
objects against its CRD models, and what a rolling update without dropped requests needs."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.prometheus_operator import v1 as monitoring
from kubernetes_validate.utils import SchemaNotFoundError

from gateway.control.repository_seed import TENSORRT_CACHE
from tests.support.deploy import (
    DEPLOY,
    KUBERNETES_VERSION,
    OVERLAYS,
    container,
    find,
    gateway_command,
    gateway_env,
    rendered,
)

CRD_MODELS = {
    "ServiceMonitor": monitoring.ServiceMonitor,
    "PrometheusRule": monitoring.PrometheusRule,
}


def validate(document: dict[str, Any]) -> None:
    if document["apiVersion"].startswith("monitoring.coreos.com/"):
        # The models ignore unknown fields: a round trip that loses one is an unknown field.
        model = CRD_MODELS[document["kind"]].model_validate(document)
        assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == document
        return
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid(overlay: str) -> None:
    objects = rendered(overlay)
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler"} <= kinds
    assert {"PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"} <= kinds
    for document in objects:
        validate(document)
        if document["kind"] != "Namespace":
            assert document["metadata"]["namespace"] == "inference-gateway"


def test_validation_is_strict() -> None:
    gateway = yaml.safe_load(yaml.safe_dump(find(rendered("cpu"), "Deployment", "gateway")))
    gateway["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(gateway)
    monitor = yaml.safe_load(yaml.safe_dump(find(rendered("cpu"), "ServiceMonitor", "gateway")))
    monitor["spec"]["endpoint"] = []
    with pytest.raises(AssertionError):
        validate(monitor)
    with pytest.raises(SchemaNotFoundError):  # an unknown kind is not waved through
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "x"}},
            KUBERNETES_VERSION,
            strict=True,
        )


def test_the_gateway_rolls_without_dropping_requests() -> None:
    gateway = find(rendered("cpu"), "Deployment", "gateway")
    assert gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = gateway["spec"]["template"]["spec"]
    main = container(gateway, "gateway")
    assert main["args"] == gateway_command()  # what Compose and the drain test run
    assert main["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    env = gateway_env()
    pre_stop_s = main["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain_s = float(env["GATEWAY_DRAIN_DELAY_S"])
    grace_s = float(env["GATEWAY_SHUTDOWN_GRACE_S"])
    # preStop, the drain, requests in progress, closing the clients (as long again)
    assert pod["terminationGracePeriodSeconds"] >= pre_stop_s + drain_s + 2 * grace_s + 5
    assert drain_s > 0
    pdb = find(rendered("cpu"), "PodDisruptionBudget", "gateway")
    assert pdb["spec"]["minAvailable"] == 1 and gateway["spec"]["replicas"] >= 2


def test_pods_run_unprivileged_with_read_only_root_filesystems() -> None:
    for workload in rendered("gpu"):
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for each in pod.get("initContainers", []) + pod["containers"]:
            context = each["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(each["resources"]["limits"])


def test_triton_gets_the_start_up_budget_of_nvidias_chart_and_a_shared_repository() -> None:
    objects = rendered("cpu")
    triton = find(objects, "Deployment", "triton")
    startup = container(triton, "triton")["startupProbe"]
    assert startup["httpGet"]["path"] == "/v2/health/ready"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 300  # 30 x 10 s
    assert "--model-control-mode=explicit" in container(triton, "triton")["args"]
    claim = find(objects, "PersistentVolumeClaim", "model-repository")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    gateway = find(objects, "Deployment", "gateway")
    for workload in (triton, gateway):
        volumes = workload["spec"]["template"]["spec"]["volumes"]
        assert {
            "name": "models",
            "persistentVolumeClaim": {"claimName": "model-repository"},
        } in volumes
    assert gateway_env()["GATEWAY_MODEL_REPOSITORY"] == "/models"
    headless = find(objects, "Service", "triton-endpoints")
    assert headless["spec"]["clusterIP"] == "None"
    hpa = find(objects, "HorizontalPodAutoscaler", "triton")
    (metric,) = hpa["spec"]["metrics"]
    adapter = yaml.safe_load(
        find(objects, "ConfigMap", "prometheus-adapter-triton-rules")["data"]["rules.yaml"]
    )
    assert metric["pods"]["metric"]["name"] == adapter["custom"][0]["name"]["as"]
    assert "nv_inference_queue_duration_us" in adapter["custom"][0]["seriesQuery"]
    query = adapter["custom"][0]["metricsQuery"]  # counters restart at every model reload
    assert "increase(" in query and "delta(" not in query


def test_triton_pods_leave_one_at_a_time_and_after_the_gateways_stopped_sending() -> None:
    objects = rendered("cpu")
    budget = find(objects, "PodDisruptionBudget", "triton")
    assert budget["spec"]["maxUnavailable"] == 1
    triton = find(objects, "Deployment", "triton")
    (sleep, seconds) = container(triton, "triton")["lifecycle"]["preStop"]["exec"]["command"]
    resolve_s = float(gateway_env().get("GATEWAY_TRITON_RESOLVE_S", "10"))
    assert sleep == "sleep" and float(seconds) > resolve_s
    grace = triton["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(seconds) + 30  # then Triton's own exit (--exit-timeout-secs 30)


def test_the_gpu_overlay_asks_for_gpus_and_seeds_gpu_configs() -> None:
    cpu, gpu = (
        find(rendered("cpu"), "Deployment", "triton"),
        find(rendered("gpu"), "Deployment", "triton"),
    )
    assert "nvidia.com/gpu" not in container(cpu, "triton")["resources"]["limits"]
    assert int(container(gpu, "triton")["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert container(cpu, "seed-models", init=True)["args"] == []
    assert container(gpu, "seed-models", init=True)["args"] == ["--gpu"]
    assert "nodeSelector" not in gpu["spec"]["template"]["spec"]  # the GPU request suffices
    assert gpu["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    mounts = {m["mountPath"]: m["name"] for m in container(gpu, "triton")["volumeMounts"]}
    volumes = {v["name"]: v for v in gpu["spec"]["template"]["spec"]["volumes"]}
    cache = volumes[mounts[TENSORRT_CACHE]]["persistentVolumeClaim"]["claimName"]
    claim = find(rendered("gpu"), "PersistentVolumeClaim", cache)
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    (env,) = [
        o["data"]
        for o in rendered("gpu")
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("gateway-env")
    ]  # its name carries a hash of its content
    assert float(env["GATEWAY_TRITON_LOAD_TIMEOUT_S"]) >= 600  # TensorRT builds engines


def test_only_the_gateway_reaches_triton_and_redis() -> None:
    objects = rendered("cpu")
    deny = find(objects, "NetworkPolicy", "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    gateway_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}
    for name, port in (("triton", 8000), ("redis", 6379)):
        rules = find(objects, "NetworkPolicy", name)["spec"]["ingress"]
        reaching = [r for r in rules if {"protocol": "TCP", "port": port} in r["ports"]]
        assert reaching and all(r["from"] == [gateway_pods] for r in reaching)
    # Prometheus reaches Triton's metrics port from whichever namespace it runs in.
    rules = find(objects, "NetworkPolicy", "triton")["spec"]["ingress"]
    prometheus = {
        "namespaceSelector": {},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    assert any(r["from"] == [prometheus] and r["ports"] == [{"protocol": "TCP", "port": 8002}]
               for r in rules)  # fmt: skip


def test_the_prometheus_rule_carries_the_shipped_alert_rules() -> None:
    rule = find(rendered("cpu"), "PrometheusRule", "gateway")
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    assert rule["spec"] == shipped


def test_the_ingress_example_routes_the_client_apis_only() -> None:
    example = yaml.safe_load((DEPLOY / "kubernetes" / "examples" / "ingress.yaml").read_text())
    validate(example)
    paths = example["spec"]["rules"][0]["http"]["paths"]
    assert {p["backend"]["service"]["name"] for p in paths} == {"gateway"}
    # Not / (it would publish /metrics and the admin API): the v2 and OpenAI APIs.
    assert sorted(p["path"] for p in paths) == ["/v1", "/v2"]


def test_a_publish_cannot_take_more_memory_than_the_pod_has() -> None:
    """The upload is held a few times over, by each of the workers publishing at once."""
    gateway = find(rendered("cpu"), "Deployment", "gateway")
    limit = container(gateway, "gateway")["resources"]["limits"]["memory"]
    assert limit.endswith("Gi")
    workers = int(gateway_command()[gateway_command().index("--workers") + 1])
    upload = int(gateway_env()["GATEWAY_MAX_UPLOAD_BYTES"])
    assert 4 * upload * workers <= int(limit.removesuffix("Gi")) * 1024**3


def test_prometheus_finds_the_monitors_and_scrapes_each_pod_once() -> None:
    objects = rendered("cpu")
    services = [o for o in objects if o["kind"] == "Service"]
    for kind in ("ServiceMonitor", "PrometheusRule"):
        for document in (o for o in objects if o["kind"] == kind):
            # What a default kube-prometheus-stack install selects them on.
            assert document["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        chosen = [s for s in services if wanted <= s["metadata"]["labels"].items()]
        assert len(chosen) == 1, (monitor["metadata"]["name"], chosen)


def test_redis_has_a_password_from_a_secret_and_a_headless_governing_service() -> None:
    objects = rendered("cpu")
    redis = find(objects, "StatefulSet", "redis")
    governing = find(objects, "Service", redis["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"
    volumes = {v["name"]: v for v in redis["spec"]["template"]["spec"]["volumes"]}
    assert volumes["auth"]["secret"]["secretName"] == "redis-auth"
    mounts = {m["name"]: m["mountPath"] for m in container(redis, "redis")["volumeMounts"]}
    config = (DEPLOY / "kubernetes" / "base" / "redis.conf").read_text()
    assert f"include {mounts['auth']}/redis_auth.conf" in config.splitlines()
    assert "/etc/redis-auth/redis_auth.conf" in str(container(redis, "redis")["readinessProbe"])
    assert "GATEWAY_REDIS_URL" not in gateway_env()  # a secret file: it holds the password
