"""docker-compose.yml is valid Compose and keeps the rules a platform team relies on.

Each rule is a function listing what breaks it, run on the file as committed (nothing) and on a
copy broken on purpose (something), so a rule that could never fail would be seen to."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from goldenhour.infra.settings import Settings
from tests.unit.deploy.helpers import (
    INTERPOLATION,
    REPO,
    SECRET_NAME,
    looks_like_secret,
    plain,
    strings,
)

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
CADDYFILE = REPO / "infra" / "proxy" / "Caddyfile"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")

JOBS = {"migrate": ["migrate"], "topics": ["topics"]}
PARTS = {"api", "streams", "dispatcher"}
HEALTH_PORT = "9100"
PUBLISHED_BY_PROXY = {"80", "443"}

# Variables of the runtime interface every deployment sets, whether or not Settings names them.
INTERFACE = {
    "GOLDENHOUR_TOPIC_PARTITIONS",
    "GOLDENHOUR_TOPIC_REPLICATION_FACTOR",
    "GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS",
    "GOLDENHOUR_MIGRATE",
    "GOLDENHOUR_HEALTH_PORT",
    "GOLDENHOUR_HEALTH_HOST",
    "GOLDENHOUR_SECRET_KEY_PREVIOUS",
    "TWILIO_AUTH_TOKEN_SECONDARY",
}

Compose = dict[str, Any]


def load(text: str) -> Compose:
    return plain(yaml.safe_load(text))


@pytest.fixture(scope="module")
def compose() -> Compose:
    return load(COMPOSE.read_text())


def goldenhour_services(c: Compose) -> dict[str, dict[str, Any]]:
    """The services that run the Golden Hour image (the jobs and the parts)."""
    return {
        name: svc
        for name, svc in c["services"].items()
        if "build" in svc or str(svc.get("image", "")).startswith("goldenhour")
    }


def parts(c: Compose) -> dict[str, dict[str, Any]]:
    """The long-running parts: every Golden Hour service but the one-shot jobs."""
    return {
        n: s for n, s in goldenhour_services(c).items() if s.get("command") not in JOBS.values()
    }


def brokers(c: Compose) -> list[str]:
    return [
        n for n, s in c["services"].items() if str(s.get("image", "")).startswith("apache/kafka")
    ]


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def published(svc: dict[str, Any]) -> list[str]:
    """The host ports a service publishes, whatever syntax it uses."""
    out = []
    for port in svc.get("ports") or []:
        if isinstance(port, dict):
            out.append(str(port.get("published", port.get("target"))))
        else:
            text = str(port).split("/")[0]
            out.append(text.split(":")[-2] if ":" in text else text)
    return out


# ---- the rules ---------------------------------------------------------------------------------


def servers_problems(c: Compose) -> list[str]:
    """Three Kafka brokers and PostgreSQL 16, each with a health check; data on volumes."""
    out = []
    names = brokers(c)
    if len(names) != 3:
        out.append(f"{len(names)} Kafka brokers, not 3")
    for name in names:
        svc = c["services"][name]
        if "healthcheck" not in svc:
            out.append(f"{name}: no healthcheck")
        if environment(svc).get("KAFKA_MIN_INSYNC_REPLICAS") != "2":
            out.append(f"{name}: min.insync.replicas is not 2")
        if environment(svc).get("KAFKA_AUTO_CREATE_TOPICS_ENABLE") != "false":
            out.append(f"{name}: creates an unknown topic with its defaults")
        if not svc.get("volumes"):
            out.append(f"{name}: its log is on no volume")
    pg = c["services"].get("postgres", {})
    if not str(pg.get("image", "")).startswith("postgres:16"):
        out.append("postgres is not postgres:16")
    if "pg_isready" not in str(pg.get("healthcheck", {}).get("test")):
        out.append("postgres: no pg_isready healthcheck")
    if not any(str(v).endswith(":/var/lib/postgresql/data") for v in pg.get("volumes", [])):
        out.append("postgres: its data is on no volume")
    return out


def jobs_problems(c: Compose) -> list[str]:
    """One-shot migrate and topics jobs, each waiting for the server it needs."""
    out = []
    for name, command in JOBS.items():
        svc = c["services"].get(name)
        if svc is None:
            out.append(f"no {name} job")
            continue
        if svc.get("command") != command:
            out.append(f"{name}: runs {svc.get('command')}, not {command}")
        if svc.get("restart") != "no":
            out.append(f"{name}: restart is {svc.get('restart')!r}, a one-shot job needs 'no'")
    wants = {"migrate": ["postgres"], "topics": brokers(c)}
    for name, needs in wants.items():
        deps = c["services"].get(name, {}).get("depends_on") or {}
        for server in needs:
            if not isinstance(deps, dict) or deps.get(server, {}).get("condition") != (
                "service_healthy"
            ):
                out.append(f"{name}: does not wait for {server} to be healthy")
    env = environment(c["services"].get("topics", {}))
    if env.get("GOLDENHOUR_TOPIC_REPLICATION_FACTOR") != "3":
        out.append("topics: replication factor is not 3")
    if env.get("GOLDENHOUR_TOPIC_MIN_INSYNC_REPLICAS") != "2":
        out.append("topics: min.insync.replicas is not 2")
    return out


def parts_problems(c: Compose) -> list[str]:
    """Every part waits for both jobs and healthy servers, is health-checked, restarts, waits
    for the schema, runs two replicas and keeps the whole shared environment."""
    out = []
    found = parts(c)
    if not PARTS <= set(found):
        out.append(f"parts missing: {sorted(PARTS - set(found))}")
    shared = {k: str(v) for k, v in c.get("x-goldenhour-env", {}).items()}
    if not shared:
        out.append("no shared x-goldenhour-env")
    for name, svc in found.items():
        deps = svc.get("depends_on")
        if not isinstance(deps, dict):
            out.append(f"{name}: depends_on has no conditions")
            deps = {}
        for job in JOBS:
            if deps.get(job, {}).get("condition") != "service_completed_successfully":
                out.append(f"{name}: does not wait for {job} to complete successfully")
        if any(d.get("required") is False for d in deps.values() if isinstance(d, dict)):
            out.append(f"{name}: starts without a service it depends on (required: false)")
        for server in ["postgres", *brokers(c)]:
            if deps.get(server, {}).get("condition") != "service_healthy":
                out.append(f"{name}: does not wait for {server} to be healthy")
        if (svc.get("healthcheck") or {}).get("disable"):
            out.append(f"{name}: healthcheck disabled")
        test = " ".join(map(str, (svc.get("healthcheck") or {}).get("test") or []))
        for path in ("healthz", "readyz"):
            if path not in test or HEALTH_PORT not in test:
                out.append(f"{name}: healthcheck does not probe {path} on the health port")
        if svc.get("restart") not in {"always", "unless-stopped", "on-failure"}:
            out.append(f"{name}: restart is {svc.get('restart')!r}")
        if (svc.get("deploy") or {}).get("replicas", 1) < 2:
            out.append(f"{name}: fewer than 2 replicas")
        env = environment(svc)
        if env.get("GOLDENHOUR_MIGRATE") != "wait":
            out.append(f"{name}: GOLDENHOUR_MIGRATE is not wait (it would migrate at start)")
        if env.get("GOLDENHOUR_HEALTH_PORT") != HEALTH_PORT:
            out.append(f"{name}: serves no health port {HEALTH_PORT}")
        if env.get("GOLDENHOUR_HEALTH_HOST") != "0.0.0.0":
            out.append(f"{name}: its health port is on 127.0.0.1 only: nothing can scrape it")
        lost = sorted(k for k, v in shared.items() if env.get(k) != v)
        if lost:
            out.append(f"{name}: its environment replaced the shared one (lost {lost})")
        if svc.get("env_file") not in (".env", [".env"]):
            out.append(f"{name}: secrets not from .env")
    bootstrap = shared.get("GOLDENHOUR_KAFKA_BOOTSTRAP", "")
    for broker in brokers(c):
        if f"{broker}:" not in bootstrap:
            out.append(f"GOLDENHOUR_KAFKA_BOOTSTRAP leaves out {broker}")
    return out


def exposure_problems(c: Compose, caddyfile: str) -> list[str]:
    """Only the proxy publishes, and only 80/443; the proxy never routes /metrics."""
    out = []
    for name, svc in c["services"].items():
        if svc.get("network_mode") == "host":
            out.append(f"{name}: on the host's network, every port is public")
        ports = published(svc)
        if name == "proxy":
            if set(ports) - PUBLISHED_BY_PROXY:
                out.append(f"proxy publishes {sorted(set(ports) - PUBLISHED_BY_PROXY)}")
            if "443" not in ports:
                out.append("proxy does not publish 443")
        elif ports:
            out.append(f"{name}: publishes {ports}; only the proxy may")
    if "proxy" not in c["services"]:
        out.append("no proxy service")
    elif c["services"]["proxy"].get("image") != "caddy:2":
        out.append("the proxy is not caddy:2")
    matcher = re.search(r"^\s*@(\S+)\s+path\s+/metrics\s+/metrics/\*\s*$", caddyfile, re.M)
    if not matcher or not re.search(
        rf"^\s*respond\s+@{re.escape(matcher.group(1))}\s+404\s*$", caddyfile, re.M
    ):
        out.append("the Caddyfile does not refuse /metrics")
    if not re.search(r"^\s*reverse_proxy\b", caddyfile, re.M):
        out.append("the Caddyfile proxies nothing")
    # Only the API's own port: the health port serves /metrics under any path a proxy sends.
    ports = set(re.findall(r"^\s*port\s+(\d+)\s*$", caddyfile, re.M))
    ports |= set(re.findall(r"\bapi:(\d+)", caddyfile))
    if ports != {"8000"}:
        out.append(f"the Caddyfile proxies to port(s) {sorted(ports)}, not the API's 8000 only")
    return out


def secret_problems(c: Compose) -> list[str]:
    """No credential in the file: secret variables are interpolated from .env, and nothing
    else looks like a key, a token or a password."""
    out = []
    for name, svc in c["services"].items():
        for key, value in environment(svc).items():
            if not SECRET_NAME.search(key):
                continue
            url_with_interpolated_password = re.search(r"://[^:@/]+:\$\{[^}]+\}@", value)
            if not INTERPOLATION.match(value) and not url_with_interpolated_password:
                out.append(f"{name}: {key} is written in the file, not taken from .env")
    for where, value in strings(c):
        if looks_like_secret(value):
            out.append(f"{where}: looks like a secret")
    return out


def env_example_entries(text: str) -> dict[str, tuple[str, bool]]:
    """.env.example's variables: value, and whether a comment above describes it."""
    entries: dict[str, tuple[str, bool]] = {}
    described = False
    for line in text.splitlines():
        entry = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if entry:
            entries[entry.group(1)] = (entry.group(2), described)
            described = False
        elif line.startswith("#") and not line.startswith("# ----"):
            described = True
        elif not line.strip():
            described = False
    return entries


def needed_variables(c: Compose, settings: type[Settings] = Settings) -> set[str]:
    """Every variable a deployment may set: Settings' names, the runtime interface, what the
    compose file interpolates and what it sets for Golden Hour's containers."""
    names = {f.alias for f in settings.model_fields.values() if f.alias} | INTERFACE
    names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    for svc in goldenhour_services(c).values():
        names |= set(environment(svc))
    return names


def env_example_problems(c: Compose, text: str, settings: type[Settings] = Settings) -> list[str]:
    """.env.example names and describes every variable, and holds no secret."""
    entries = env_example_entries(text)
    needed = needed_variables(c, settings)
    out = [f".env.example does not name {n}" for n in sorted(needed - set(entries))]
    for name, (value, described) in entries.items():
        if not described:
            out.append(f".env.example: {name} has no comment saying what it is")
        if SECRET_NAME.search(name) and value and not re.search(r"<[a-z ]+>", value):
            out.append(f".env.example: {name} has a value; a secret's placeholder is empty")
        if looks_like_secret(value):
            out.append(f".env.example: {name}'s value looks like a secret")
    return out


# ---- the file as committed ---------------------------------------------------------------------


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_compose_file_validates_against_the_compose_specification() -> None:
    result = check_jsonschema(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_an_invalid_file(tmp_path: Path) -> None:
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["api"]["depends_on_all"] = ["postgres"]
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = check_jsonschema(path)
    assert result.returncode != 0, result.stdout
    assert "depends_on_all" in result.stdout + result.stderr


RULES: dict[str, Callable[[Compose], list[str]]] = {
    "servers": servers_problems,
    "jobs": jobs_problems,
    "parts": parts_problems,
    "exposure": lambda c: exposure_problems(c, CADDYFILE.read_text()),
    "secrets": secret_problems,
    "env_example": lambda c: env_example_problems(c, ENV_EXAMPLE.read_text()),
}


@pytest.mark.parametrize("rule", RULES)
def test_the_compose_file_keeps_the_rule(compose: Compose, rule: str) -> None:
    assert RULES[rule](compose) == []


def test_dotenv_is_never_committed() -> None:
    ignored = (REPO / ".gitignore").read_text().splitlines()
    assert ".env" in ignored


# ---- each rule catches what breaks it ----------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[Compose], None]:
    def change(c: Compose) -> None:
        *parents, last = path.split("/")
        node = c
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _delete(path: str) -> Callable[[Compose], None]:
    def change(c: Compose) -> None:
        *parents, last = path.split("/")
        node = c
        for key in parents:
            node = node[key]
        del node[last]

    return change


BREAKAGES: dict[str, tuple[str, Callable[[Compose], None]]] = {
    "two brokers": ("servers", _delete("services/kafka3")),
    "broker without healthcheck": ("servers", _delete("services/kafka2/healthcheck")),
    "postgres 15": ("servers", _set("services/postgres/image", "postgres:15")),
    "postgres without healthcheck": ("servers", _delete("services/postgres/healthcheck")),
    "postgres without volume": ("servers", _delete("services/postgres/volumes")),
    "migrate restarts": ("jobs", _set("services/migrate/restart", "unless-stopped")),
    "no topics job": ("jobs", _delete("services/topics")),
    "topics before brokers": ("jobs", _delete("services/topics/depends_on")),
    "replication factor 1": (
        "jobs",
        _set("services/topics/environment/GOLDENHOUR_TOPIC_REPLICATION_FACTOR", "1"),
    ),
    "streams ignores migrate": ("parts", _delete("services/streams/depends_on/migrate")),
    "dispatcher only starts after topics": (
        "parts",
        _set("services/dispatcher/depends_on/topics/condition", "service_started"),
    ),
    "api ignores a broker": ("parts", _delete("services/api/depends_on/kafka2")),
    "dispatcher without healthcheck": ("parts", _delete("services/dispatcher/healthcheck")),
    "streams probes only /healthz": (
        "parts",
        _set("services/streams/healthcheck/test", ["CMD", "curl", "-f", "localhost:9100/healthz"]),
    ),
    "streams never restarts": ("parts", _delete("services/streams/restart")),
    "dispatcher healthcheck disabled": (
        "parts",
        _set("services/dispatcher/healthcheck/disable", True),
    ),
    "api starts without migrate": (
        "parts",
        _set("services/api/depends_on/migrate/required", False),
    ),
    "streams health on localhost": (
        "parts",
        _set("services/streams/environment/GOLDENHOUR_HEALTH_HOST", "127.0.0.1"),
    ),
    "a broker auto-creates topics": (
        "servers",
        _set("services/kafka2/environment/KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true"),
    ),
    "one api replica": ("parts", _set("services/api/deploy/replicas", 1)),
    "api migrates itself": ("parts", _delete("services/api/environment/GOLDENHOUR_MIGRATE")),
    "api environment replaces the shared one": (
        "parts",
        _set(
            "services/api/environment",
            {"GOLDENHOUR_MIGRATE": "wait", "GOLDENHOUR_HEALTH_PORT": "9100"},
        ),
    ),
    "streams without .env": ("parts", _delete("services/streams/env_file")),
    "api published": ("exposure", _set("services/api/ports", ["8000:8000"])),
    "api on localhost": ("exposure", _set("services/api/ports", ["127.0.0.1:8000:8000"])),
    "health port published": (
        "exposure",
        _set("services/streams/ports", [{"target": 9100, "published": 9100}]),
    ),
    "proxy publishes metrics": ("exposure", _set("services/proxy/ports", ["443:443", "9100:9100"])),
    "host network": ("exposure", _set("services/dispatcher/network_mode", "host")),
    "literal auth token": (
        "secrets",
        _set("services/api/environment/TWILIO_AUTH_TOKEN", "not-from-the-env-file"),
    ),
    "literal database password": (
        "secrets",
        _set(
            "services/streams/environment/GOLDENHOUR_DATABASE_URL",
            "postgresql://goldenhour:hunter2@postgres:5432/goldenhour",
        ),
    ),
    "twilio sid in a label": (
        "secrets",
        _set("services/api/labels", {"sid": "AC" + "0123456789abcdef" * 2}),
    ),
    "random key in a command": (
        "secrets",
        _set("services/migrate/command", ["migrate", "--key", "Zq8rT2vX9kLm4Np7Wb3Yc6Hd1Fg5Js0A"]),
    ),
    "new setting left undocumented": (
        "env_example",
        _set("services/api/environment/GOLDENHOUR_SOMETHING_NEW", "1"),
    ),
}


@pytest.mark.parametrize("case", BREAKAGES)
def test_a_broken_copy_breaks_its_rule(compose: Compose, case: str) -> None:
    rule, breakage = BREAKAGES[case]
    broken = copy.deepcopy(compose)
    breakage(broken)
    assert RULES[rule](broken), f"{case}: rule {rule} saw nothing wrong"


@pytest.mark.parametrize(
    ("case", "caddyfile"),
    [
        ("no refusal", "{$D} {\n\treverse_proxy api:8000\n}\n"),
        ("refusal of another path", "{$D} {\n\t@m path /other /other/*\n\trespond @m 404\n}\n"),
        ("upstream on the health port", CADDYFILE.read_text().replace("port 8000", "port 9100")),
        (
            "a path sent to the health port",
            CADDYFILE.read_text().replace(
                "\treverse_proxy {",
                "\thandle /status* {\n\t\treverse_proxy api:9100\n\t}\n\treverse_proxy {",
            ),
        ),
    ],
)
def test_a_caddyfile_that_routes_metrics_is_refused(
    compose: Compose, case: str, caddyfile: str
) -> None:
    assert exposure_problems(compose, caddyfile), case


@pytest.mark.parametrize(
    ("case", "edit"),
    [
        ("a variable dropped", lambda t: t.replace("GOLDENHOUR_SESSION_TTL_S=", "X=")),
        (
            "a secret filled in",
            lambda t: t.replace("TWILIO_AUTH_TOKEN=\n", "TWILIO_AUTH_TOKEN=x\n"),
        ),
        ("a comment dropped", lambda t: t.replace("# Its auth token", "")),
    ],
)
def test_a_broken_env_example_is_refused(compose: Compose, case: str, edit: Any) -> None:
    text = ENV_EXAMPLE.read_text()
    assert edit(text) != text, f"{case}: the edit changed nothing"
    assert env_example_problems(compose, edit(text)), case


def test_a_new_setting_is_refused_until_env_example_names_it(compose: Compose) -> None:
    class Newer(Settings):
        webhook_signing_token: str = Field(default="", alias="GOLDENHOUR_WEBHOOK_SIGNING_TOKEN")

    problems = env_example_problems(compose, ENV_EXAMPLE.read_text(), Newer)
    assert problems == [".env.example does not name GOLDENHOUR_WEBHOOK_SIGNING_TOKEN"]
