"""infra/k8s: every manifest of the kustomization is valid for a pinned Kubernetes, and the
manifests keep the rules: probes, resources, spread, disruption budgets, secrets by reference
only, and network policies that admit the ingress to the API and monitoring to /metrics only.

Like the compose rules, each rule lists what breaks it and is run on broken copies too."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.deploy.helpers import REPO, SECRET_NAME, looks_like_secret, plain, strings

K8S = REPO / "infra" / "k8s"
KUBERNETES = "1.30"
PARTS = {"api", "streams", "dispatcher"}
JOBS = {"migrate", "topics"}
SECRET = "goldenhour-secrets"
HEALTH_PORT = 9100
API_PORT = 8000
# Who may reach which pod, by namespace and port: nothing else.
ALLOWED_INGRESS = {
    "api": {("ingress-nginx", API_PORT), ("monitoring", HEALTH_PORT)},
    "streams": {("monitoring", HEALTH_PORT)},
    "dispatcher": {("monitoring", HEALTH_PORT)},
    "migrate": set(),
    "topics": set(),
}
# Custom resources the schemas do not know, checked by structure below.
CUSTOM_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

Manifests = list[dict[str, Any]]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def generated(k: dict[str, Any]) -> Manifests:
    """The ConfigMaps kustomize makes from configMapGenerator, with the data it would give."""
    out = []
    for gen in k.get("configMapGenerator", []):
        data = {Path(f).name: (K8S / f).read_text() for f in gen.get("files", [])}
        data |= dict(literal.split("=", 1) for literal in gen.get("literals", []))
        out.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": gen["name"]},
                "data": data,
            }
        )
    return out


def build() -> Manifests:
    """Every manifest of the kustomization, in its namespace (kustomize's name hashes aside)."""
    k = kustomization()
    docs: Manifests = []
    for resource in k["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / resource).read_text()) if d]
    docs += generated(k)
    for doc in docs:
        if doc["kind"] != "Namespace" and k.get("namespace"):
            doc["metadata"]["namespace"] = k["namespace"]
    return plain(docs)


@pytest.fixture(scope="module")
def manifests() -> Manifests:
    return build()


def of_kind(m: Manifests, kind: str) -> list[dict[str, Any]]:
    return [d for d in m if d["kind"] == kind]


def named(m: Manifests, kind: str, name: str) -> dict[str, Any]:
    return next(d for d in m if d["kind"] == kind and d["metadata"]["name"] == name)


def component(doc: dict[str, Any]) -> str:
    return doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


def workloads(m: Manifests) -> list[dict[str, Any]]:
    return of_kind(m, "Deployment") + of_kind(m, "Job")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector (matchLabels and matchExpressions) matches these labels."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        present, value = expr["key"] in labels, labels.get(expr["key"])
        op = expr["operator"]
        if op == "In" and value not in expr["values"]:
            return False
        if op == "NotIn" and value in expr["values"]:
            return False
        if op == "Exists" and not present or op == "DoesNotExist" and present:
            return False
    return True


def env_of(m: Manifests, container: dict[str, Any]) -> dict[str, str]:
    """A container's plain environment: its ConfigMaps' data, then its own values."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= named(m, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
    return env


def port_number(container: dict[str, Any], port: int | str) -> int | None:
    if isinstance(port, int):
        return port
    found = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return found[0] if found else None


# ---- the rules ---------------------------------------------------------------------------------


def schema_problems(m: Manifests) -> list[str]:
    """Every manifest valid, strictly, against the pinned version; custom kinds only known ones."""
    out = []
    for doc in m:
        where = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
        if (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            out.append(f"{where}: no schema for {doc.get('apiVersion')} in Kubernetes {KUBERNETES}")
        except kubernetes_validate.ValidationError as e:
            out.append(f"{where}: {'.'.join(map(str, e.path))}: {e.message}")
    return out


def service_monitor_problems(m: Manifests) -> list[str]:
    """The ServiceMonitor scrapes /metrics on the health port of every part's Service, with the
    bearer token from the Secret, and has nothing the operator would not read."""
    out = []
    monitors = of_kind(m, "ServiceMonitor")
    if len(monitors) != 1:
        return [f"{len(monitors)} ServiceMonitors, not 1"]
    sm = monitors[0]
    if sm.get("apiVersion") != "monitoring.coreos.com/v1" or set(sm) - {
        "apiVersion",
        "kind",
        "metadata",
        "spec",
    }:
        out.append("ServiceMonitor: not a monitoring.coreos.com/v1 resource")
    spec = sm.get("spec", {})
    if set(spec) - {"selector", "endpoints", "namespaceSelector", "jobLabel"}:
        out.append(f"ServiceMonitor: unknown spec keys {sorted(set(spec) - {'selector'})}")
    scraped = [
        s
        for s in of_kind(m, "Service")
        if selects(spec.get("selector", {}), s["metadata"].get("labels", {}))
    ]
    scraped_parts = {s["metadata"]["labels"].get("app.kubernetes.io/component") for s in scraped}
    if scraped_parts != PARTS:
        out.append(f"ServiceMonitor scrapes {sorted(map(str, scraped_parts))}, not every part")
    # The alert rules and dashboards select `job="api"` and so on: the part's name, not the
    # Service's.
    if spec.get("jobLabel") != "app.kubernetes.io/component":
        out.append("ServiceMonitor: jobLabel is not app.kubernetes.io/component")
    endpoint_keys = {"port", "path", "scheme", "interval", "scrapeTimeout", "authorization"}
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        out.append("ServiceMonitor: no endpoints")
    for ep in endpoints:
        if set(ep) - endpoint_keys:
            out.append(f"ServiceMonitor endpoint: unknown keys {sorted(set(ep) - endpoint_keys)}")
        if ep.get("path") != "/metrics":
            out.append("ServiceMonitor endpoint: path is not /metrics")
        for svc in scraped:
            ports = {p.get("name"): p["port"] for p in svc["spec"]["ports"]}
            if ports.get(ep.get("port")) != HEALTH_PORT:
                out.append(f"{svc['metadata']['name']}: no port {ep.get('port')} = {HEALTH_PORT}")
        auth = ep.get("authorization") or {}
        creds = auth.get("credentials") or {}
        if auth.get("type") != "Bearer" or creds.get("name") != SECRET or not creds.get("key"):
            out.append(f"ServiceMonitor endpoint: no bearer token from {SECRET}")
    return out


def deployment_problems(m: Manifests) -> list[str]:
    """Each part: 2 replicas; startup, readiness /readyz and liveness /healthz on the health
    port; requests and limits; spread by host; a PDB; MIGRATE=wait; non-root, read-only."""
    out = []
    deployments = of_kind(m, "Deployment")
    found = {component(d) for d in deployments}
    if found != PARTS:
        out.append(f"Deployments for {sorted(found)}, not {sorted(PARTS)}")
    budgets = of_kind(m, "PodDisruptionBudget")
    for d in deployments:
        name, spec = d["metadata"]["name"], d["spec"]
        pod, labels = spec["template"]["spec"], spec["template"]["metadata"]["labels"]
        if spec.get("replicas", 1) < 2:
            out.append(f"{name}: fewer than 2 replicas")
        if not selects(spec["selector"], labels):
            out.append(f"{name}: its selector does not select its pods")
        for c in pod["containers"]:
            env = env_of(m, c)
            health = int(env.get("GOLDENHOUR_HEALTH_PORT", 0))
            if health != HEALTH_PORT or env.get("GOLDENHOUR_HEALTH_HOST") != "0.0.0.0":
                out.append(f"{name}: no health port {HEALTH_PORT} on all interfaces")
            for probe, path in (
                ("startupProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
                ("livenessProbe", "/healthz"),
            ):
                get = (c.get(probe) or {}).get("httpGet") or {}
                if get.get("path") != path or port_number(c, get.get("port", 0)) != health:
                    out.append(f"{name}: no {probe} on {path} at the health port")
            resources = c.get("resources") or {}
            for kind in ("requests", "limits"):
                if set(resources.get(kind) or {}) != {"cpu", "memory"}:
                    out.append(f"{name}: {kind} do not give both cpu and memory")
            if env.get("GOLDENHOUR_MIGRATE") != "wait":
                out.append(f"{name}: GOLDENHOUR_MIGRATE is not wait")
        terms = (
            (pod.get("affinity") or {})
            .get("podAntiAffinity", {})
            .get("preferredDuringSchedulingIgnoredDuringExecution", [])
        )
        if not any(
            t["podAffinityTerm"].get("topologyKey") == "kubernetes.io/hostname"
            and selects(t["podAffinityTerm"].get("labelSelector", {}), labels)
            for t in terms
        ):
            out.append(f"{name}: no preferred anti-affinity by hostname to its own pods")
        covering = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        if not any(b["spec"].get("minAvailable", 0) >= 1 for b in covering):
            out.append(f"{name}: no PodDisruptionBudget keeping one pod available")
    return out


def hardening_problems(m: Manifests) -> list[str]:
    """Every pod: the image's numeric non-root user, a read-only root, no privilege, no API
    token, no service links (they would set GOLDENHOUR_API_PORT=tcp://…)."""
    out = []
    user = int(re.search(r"^USER (\d+)", (REPO / "Dockerfile").read_text(), re.M).group(1))
    for w in workloads(m):
        name, pod = w["metadata"]["name"], w["spec"]["template"]["spec"]
        ctx = pod.get("securityContext") or {}
        if not ctx.get("runAsNonRoot") or ctx.get("runAsUser") != user:
            out.append(f"{name}: does not run as the image's non-root user {user}")
        if pod.get("automountServiceAccountToken") is not False:
            out.append(f"{name}: mounts a service account token it never uses")
        if pod.get("enableServiceLinks") is not False:
            out.append(f"{name}: service links would clash with GOLDENHOUR_* settings")
        for c in pod["containers"]:
            cctx = c.get("securityContext") or {}
            if not cctx.get("readOnlyRootFilesystem"):
                out.append(f"{name}: root file system is writable")
            if cctx.get("allowPrivilegeEscalation") is not False:
                out.append(f"{name}: may escalate privileges")
            if "ALL" not in (cctx.get("capabilities") or {}).get("drop", []):
                out.append(f"{name}: keeps Linux capabilities")
    return out


def jobs_problems(m: Manifests) -> list[str]:
    """The migrate and topics Jobs exist, run once, and make replicated topics."""
    out = []
    jobs = {component(j): j for j in of_kind(m, "Job")}
    if set(jobs) != JOBS:
        return [f"Jobs for {sorted(jobs)}, not {sorted(JOBS)}"]
    for part, job in jobs.items():
        pod = job["spec"]["template"]["spec"]
        if pod.get("restartPolicy") not in {"OnFailure", "Never"}:
            out.append(f"{part}: restartPolicy {pod.get('restartPolicy')}")
        if pod["containers"][0].get("args") != [part]:
            out.append(f"{part}: does not run `goldenhour {part}`")
    env = env_of(m, jobs["topics"]["spec"]["template"]["spec"]["containers"][0])
    if env.get("GOLDENHOUR_TOPIC_REPLICATION_FACTOR") != "3":
        out.append("topics: replication factor is not 3")
    if env.get("GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS") != "2":
        out.append("topics: min.insync.replicas is not 2")
    return out


def secret_problems(m: Manifests) -> list[str]:
    """No Secret is applied, secrets reach the pods by secretKeyRef only, and no literal
    anywhere looks like one."""
    out = [f"Secret {s['metadata']['name']} is in the kustomization" for s in of_kind(m, "Secret")]
    for w in workloads(m):
        name = w["metadata"]["name"]
        for c in w["spec"]["template"]["spec"]["containers"]:
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    out.append(f"{name}: takes a whole Secret by envFrom")
            for var in c.get("env", []):
                ref = (var.get("valueFrom") or {}).get("secretKeyRef")
                if SECRET_NAME.search(var["name"]) and ref is None:
                    out.append(f"{name}: {var['name']} is not a secretKeyRef")
                if ref is not None and ref.get("name") != SECRET:
                    out.append(f"{name}: {var['name']} from {ref.get('name')}, not {SECRET}")
    for cm in of_kind(m, "ConfigMap"):
        for key in cm.get("data", {}):
            if SECRET_NAME.search(key):
                out.append(f"ConfigMap {cm['metadata']['name']}: holds {key}")
    for where, value in strings(m):
        if looks_like_secret(value):
            out.append(f"{where}: looks like a secret")
    return out


def secret_keys(m: Manifests) -> set[str]:
    """The keys of the Secret the pods and the ServiceMonitor read."""
    keys = {
        var["valueFrom"]["secretKeyRef"]["key"]
        for w in workloads(m)
        for c in w["spec"]["template"]["spec"]["containers"]
        for var in c.get("env", [])
        if "secretKeyRef" in (var.get("valueFrom") or {})
    }
    for sm in of_kind(m, "ServiceMonitor"):
        for ep in sm["spec"].get("endpoints", []):
            keys.add(ep.get("authorization", {}).get("credentials", {}).get("key"))
    return keys


def allowed_ingress(m: Manifests, labels: dict[str, str], ports: list[dict[str, Any]]) -> set:
    """(namespace, port) pairs the NetworkPolicies admit to a pod; ("*", …) for any source or
    any port, so a policy broader than namespace + port never passes for a narrow one."""
    policies = [
        p
        for p in of_kind(m, "NetworkPolicy")
        if selects(p["spec"]["podSelector"], labels)
        and "Ingress" in p["spec"].get("policyTypes", [])
    ]
    if not policies:
        return {("*", "*")}  # a pod no policy selects takes traffic from anyone
    named_ports = {p.get("name"): p["containerPort"] for p in ports}
    allowed: set = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            sources = []
            for peer in rule.get("from") or [{}]:
                sel = peer.get("namespaceSelector")
                match = (sel or {}).get("matchLabels", {})
                narrow = (
                    set(peer) == {"namespaceSelector"}
                    and set(sel or {}) == {"matchLabels"}
                    and set(match) == {"kubernetes.io/metadata.name"}
                )
                sources.append(match["kubernetes.io/metadata.name"] if narrow else "*")
            # A range (endPort) is read as every port: it could reach more than it names.
            rule_ports = [
                "*" if "endPort" in p else named_ports.get(p.get("port"), p.get("port", "*"))
                for p in rule.get("ports") or [{}]
            ]
            allowed |= {(s, p) for s in sources for p in rule_ports}
    return allowed


def network_problems(m: Manifests) -> list[str]:
    """Each pod admits exactly what ALLOWED_INGRESS says."""
    out = []
    for w in workloads(m):
        labels = w["spec"]["template"]["metadata"]["labels"]
        ports = [p for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])]
        got = allowed_ingress(m, labels, ports)
        want = ALLOWED_INGRESS.get(component(w), set())
        if got != want:
            name = w["metadata"]["name"]
            out.append(f"{name}: admits {sorted(map(str, got))}, not {sorted(map(str, want))}")
    return out


def ingress_problems(m: Manifests) -> list[str]:
    """The Ingress serves TLS and routes only to the API's http port, never a health port."""
    out = []
    ingresses = of_kind(m, "Ingress")
    if not ingresses:
        return ["no Ingress to the API"]
    api = named(m, "Service", "goldenhour-api")
    api_ports = {p["name"]: p["port"] for p in api["spec"]["ports"]}
    # The Service's port must lead to the container's API port, not to its health port.
    targets = {p["port"]: p.get("targetPort", p["port"]) for p in api["spec"]["ports"]}
    if targets.get(API_PORT) not in (API_PORT, "http"):
        out.append(f"Service goldenhour-api: port {API_PORT} leads to {targets.get(API_PORT)}")
    for ing in ingresses:
        if not ing["spec"].get("tls"):
            out.append(f"Ingress {ing['metadata']['name']}: no TLS")
        for rule in ing["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                svc = path["backend"]["service"]
                port = svc["port"].get("number") or api_ports.get(svc["port"].get("name"))
                if svc["name"] != "goldenhour-api" or port != API_PORT:
                    out.append(f"Ingress routes {path['path']} to {svc['name']}:{port}")
    return out


def config_problems(m: Manifests) -> list[str]:
    """The directory the pods mount is the example's (so its test covers it) and is mounted
    where GOLDENHOUR_CONFIG says."""
    out = []
    config = named(m, "ConfigMap", "goldenhour-config")["data"].get("goldenhour.yaml")
    if config != (REPO / "infra" / "goldenhour.example.yaml").read_text():
        out.append("infra/k8s/goldenhour.yaml differs from infra/goldenhour.example.yaml")
    for w in workloads(m):
        pod = w["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            path = env_of(m, c).get("GOLDENHOUR_CONFIG", "")
            mounted = [
                v
                for v in c.get("volumeMounts", [])
                if path.startswith(v["mountPath"].rstrip("/") + "/")
                and volumes.get(v["name"], {}).get("configMap", {}).get("name")
                == "goldenhour-config"
            ]
            if not mounted:
                out.append(f"{w['metadata']['name']}: {path or 'GOLDENHOUR_CONFIG'} is not mounted")
    return out


RULES: dict[str, Callable[[Manifests], list[str]]] = {
    "schema": schema_problems,
    "service_monitor": service_monitor_problems,
    "deployments": deployment_problems,
    "hardening": hardening_problems,
    "jobs": jobs_problems,
    "secrets": secret_problems,
    "network": network_problems,
    "ingress": ingress_problems,
    "config": config_problems,
}


@pytest.mark.parametrize("rule", RULES)
def test_the_manifests_keep_the_rule(manifests: Manifests, rule: str) -> None:
    assert RULES[rule](manifests) == []


def test_every_resource_file_is_in_the_kustomization() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")}
    data = {f for g in kustomization().get("configMapGenerator", []) for f in g.get("files", [])}
    assert on_disk - listed - data == {"kustomization.yaml", "secret.example.yaml"}


def test_the_secret_template_documents_every_key_and_holds_none(manifests: Manifests) -> None:
    template = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    kubernetes_validate.validate(template, KUBERNETES, strict=True)
    assert template["metadata"]["name"] == SECRET
    assert set(template["stringData"]) == secret_keys(manifests)
    assert all(value == "" for value in template["stringData"].values())


# ---- each rule catches what breaks it ----------------------------------------------------------


def _deployment(part: str) -> Callable[[Manifests], dict[str, Any]]:
    return lambda m: named(m, "Deployment", f"goldenhour-{part}")


def _container(part: str, m: Manifests) -> dict[str, Any]:
    return _deployment(part)(m)["spec"]["template"]["spec"]["containers"][0]


def _pod(part: str, m: Manifests) -> dict[str, Any]:
    return _deployment(part)(m)["spec"]["template"]["spec"]


def _policy(name: str, m: Manifests) -> dict[str, Any]:
    return named(m, "NetworkPolicy", name)


BREAKAGES: dict[str, tuple[str, Callable[[Manifests], Any]]] = {
    "unknown field": ("schema", lambda m: _pod("api", m).update(restartPolicyy="Always")),
    "wrong type": ("schema", lambda m: _deployment("streams")(m)["spec"].update(replicas="two")),
    "unknown kind": (
        "schema",
        lambda m: m.append(
            {"apiVersion": "example.org/v1", "kind": "Thing", "metadata": {"name": "x"}}
        ),
    ),
    "monitor on the api port": (
        "service_monitor",
        lambda m: of_kind(m, "ServiceMonitor")[0]["spec"]["endpoints"][0].update(port="http"),
    ),
    "monitor without token": (
        "service_monitor",
        lambda m: of_kind(m, "ServiceMonitor")[0]["spec"]["endpoints"][0].pop("authorization"),
    ),
    "monitor misses the dispatcher": (
        "service_monitor",
        lambda m: of_kind(m, "ServiceMonitor")[0]["spec"]["selector"]["matchExpressions"][0].update(
            values=["api", "streams"]
        ),
    ),
    "monitor names jobs by Service": (
        "service_monitor",
        lambda m: of_kind(m, "ServiceMonitor")[0]["spec"].pop("jobLabel"),
    ),
    "one replica": (
        "deployments",
        lambda m: _deployment("dispatcher")(m)["spec"].update(replicas=1),
    ),
    "no readiness probe": ("deployments", lambda m: _container("streams", m).pop("readinessProbe")),
    "no startup probe": ("deployments", lambda m: _container("api", m).pop("startupProbe")),
    "liveness on /readyz": (
        "deployments",
        lambda m: _container("dispatcher", m)["livenessProbe"]["httpGet"].update(path="/readyz"),
    ),
    "probe on the api port": (
        "deployments",
        lambda m: _container("api", m)["readinessProbe"]["httpGet"].update(port="http"),
    ),
    "no limits": ("deployments", lambda m: _container("streams", m)["resources"].pop("limits")),
    "no memory request": (
        "deployments",
        lambda m: _container("api", m)["resources"]["requests"].pop("memory"),
    ),
    "no anti-affinity": ("deployments", lambda m: _pod("dispatcher", m).pop("affinity")),
    "anti-affinity by zone only": (
        "deployments",
        lambda m: _pod("api", m)["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ][0]["podAffinityTerm"].update(topologyKey="topology.kubernetes.io/zone"),
    ),
    "budget selects another part": (
        "deployments",
        lambda m: named(m, "PodDisruptionBudget", "goldenhour-streams")["spec"]["selector"][
            "matchLabels"
        ].update({"app.kubernetes.io/component": "api"}),
    ),
    "budget of zero": (
        "deployments",
        lambda m: named(m, "PodDisruptionBudget", "goldenhour-api")["spec"].update(minAvailable=0),
    ),
    "streams migrates itself": (
        "deployments",
        lambda m: _container("streams", m).update(
            env=[e for e in _container("streams", m)["env"] if e["name"] != "GOLDENHOUR_MIGRATE"]
        ),
    ),
    "as root": ("hardening", lambda m: _pod("api", m)["securityContext"].update(runAsUser=0)),
    "writable root": (
        "hardening",
        lambda m: _container("dispatcher", m)["securityContext"].update(
            readOnlyRootFilesystem=False
        ),
    ),
    "service links": ("hardening", lambda m: _pod("api", m).pop("enableServiceLinks")),
    "no topics job": ("jobs", lambda m: m.remove(named(m, "Job", "goldenhour-topics"))),
    "replication factor 1": (
        "jobs",
        lambda m: named(m, "ConfigMap", "goldenhour-env")["data"].update(
            GOLDENHOUR_TOPIC_REPLICATION_FACTOR="1"
        ),
    ),
    "literal token": (
        "secrets",
        lambda m: _container("api", m)["env"].append({"name": "TWILIO_AUTH_TOKEN", "value": "x"}),
    ),
    "whole secret by envFrom": (
        "secrets",
        lambda m: _container("streams", m)["envFrom"].append({"secretRef": {"name": SECRET}}),
    ),
    "secret in the repository": (
        "secrets",
        lambda m: m.append(yaml.safe_load((K8S / "secret.example.yaml").read_text())),
    ),
    "key in a config map": (
        "secrets",
        lambda m: named(m, "ConfigMap", "goldenhour-env")["data"].update(GOLDENHOUR_SECRET_KEY="x"),
    ),
    "no default deny": (
        "network",
        lambda m: m.remove(_policy("goldenhour-default-deny-ingress", m)),
    ),
    "api from every namespace": (
        "network",
        lambda m: _policy("goldenhour-api-from-ingress", m)["spec"]["ingress"][0].update(
            {"from": [{"namespaceSelector": {}}]}
        ),
    ),
    "api on every port": (
        "network",
        lambda m: _policy("goldenhour-api-from-ingress", m)["spec"]["ingress"][0].pop("ports"),
    ),
    "metrics to the ingress": (
        "network",
        lambda m: _policy("goldenhour-health-from-monitoring", m)["spec"]["ingress"][0][
            "from"
        ].append(
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        ),
    ),
    "metrics from anywhere": (
        "network",
        lambda m: _policy("goldenhour-health-from-monitoring", m)["spec"]["ingress"][0].update(
            {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}
        ),
    ),
    "ingress to the health port": (
        "ingress",
        lambda m: of_kind(m, "Ingress")[0]["spec"]["rules"][0]["http"]["paths"][0]["backend"][
            "service"
        ]["port"].update(name="health"),
    ),
    "ingress without tls": ("ingress", lambda m: of_kind(m, "Ingress")[0]["spec"].pop("tls")),
    "api service leads to the health port": (
        "ingress",
        lambda m: named(m, "Service", "goldenhour-api")["spec"]["ports"][0].update(
            targetPort="health"
        ),
    ),
    "api policy opens a port range": (
        "network",
        lambda m: _policy("goldenhour-api-from-ingress", m)["spec"]["ingress"][0]["ports"][
            0
        ].update(endPort=9200),
    ),
    "config drifted": (
        "config",
        lambda m: named(m, "ConfigMap", "goldenhour-config")["data"].update(
            {"goldenhour.yaml": "{}"}
        ),
    ),
    "config not mounted": (
        "config",
        lambda m: _container("streams", m).update(volumeMounts=[]),
    ),
}


@pytest.mark.parametrize("case", BREAKAGES)
def test_a_broken_copy_breaks_its_rule(manifests: Manifests, case: str) -> None:
    rule, breakage = BREAKAGES[case]
    broken = copy.deepcopy(manifests)
    breakage(broken)
    assert broken != manifests, f"{case}: the breakage changed nothing"
    assert RULES[rule](broken), f"{case}: rule {rule} saw nothing wrong"
