"""What can be checked of the deployment files without a container engine: docker-compose.yml against the
compose-spec schema and our own rules, the Dockerfile, and the Kubernetes manifests against their schemas."""

import fnmatch
import json
import re
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from shared import settings_reference as ref
from shared.cli import SERVICES

ROOT = Path(__file__).resolve().parents[2]
CONSUMERS = ("scoring", "routing")  # consumer-group members that run replicas without host ports
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
KNOWN_NAMES = {v.name for v in ref.reference()}
NOT_OURS = {"FORWARDED_ALLOW_IPS"}  # uvicorn's own setting, read by ingest


def compose_raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def example_env() -> dict[str, str | None]:
    """compose.env.example's keys: their value, or None for a commented-out `# KEY=value` line."""
    found: dict[str, str | None] = {}
    for line in (ROOT / "deploy/compose.env.example").read_text().splitlines():
        match = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            found[match[2]] = None if match[1] else match[3]
    return found


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` on every string."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2], match[3]
        given = env.get(name)
        if op in (":-", "-"):
            return given if given or (op == "-" and given is not None) else arg
        if op in (":?", "?") and not given:
            raise KeyError(f"{name}: {arg}")
        return given or ""

    return REFERENCE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The file as `docker compose config` would see it with .env made from the example, secrets filled in."""
    values = {k: v for k, v in example_env().items() if v is not None}
    values.update({k: "x" * 32 for k, v in values.items() if v == ""})
    result: dict[str, Any] = interpolate(compose_raw(), {**values, **(env or {})})
    return result


def leadflow_services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in spec["services"].items() if s.get("command", [None])[0] == "serve"}


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(compose())] == []
    misplaced, misspelt = compose(), compose()
    misplaced["services"]["scoring"]["replicas"] = 2  # belongs under deploy:
    misspelt["services"]["routing"]["depends_on"]["migrate"]["condition"] = "service_finished"
    assert list(validator.iter_errors(misplaced))
    assert list(validator.iter_errors(misspelt))


def test_every_reference_resolves_from_the_example_env_and_every_example_key_is_used() -> None:
    referenced = {m[1]: m[2] for m in REFERENCE.finditer((ROOT / "docker-compose.yml").read_text())}
    example = example_env()
    assert sorted(name for name, op in referenced.items() if op not in (":-", "-") and name not in example) == []
    assert sorted(set(example) - set(referenced)) == []
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        compose({"POSTGRES_PASSWORD": ""})


def test_every_service_runs_the_one_image_and_every_leadflow_service_is_there() -> None:
    spec = compose()
    ours = {name: s for name, s in spec["services"].items() if name not in ("postgres", "kafka")}
    assert {s["image"] for s in ours.values()} == {"leadflow:latest"}
    assert all(s["build"]["context"] == "." for s in ours.values())
    assert {s["command"][1] for s in leadflow_services(spec).values()} == set(SERVICES)
    assert spec["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft


def test_one_shot_jobs_migrate_and_create_topics_once_the_stores_are_healthy() -> None:
    spec = compose()["services"]
    assert spec["migrate"]["command"] == ["migrate"]
    assert spec["kafka-topics"]["command"] == ["topics"]
    assert spec["migrate"]["restart"] == spec["kafka-topics"]["restart"] == "no"
    assert spec["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert spec["kafka-topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_waits_for_the_jobs_and_is_healthy_only_when_ready(name: str) -> None:
    service = compose()["services"][name]
    env = service["environment"]
    port = SERVICES[name]
    assert service["command"] == ["serve", name]
    for job in ("migrate", "kafka-topics"):
        assert service["depends_on"][job]["condition"] == "service_completed_successfully"
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert f"http://127.0.0.1:{port}/readyz" in test[-1]
    compile(test[-1], "healthcheck", "exec")
    assert env[f"LEADFLOW_{name.upper()}_HOST"] == "0.0.0.0"
    assert env[f"LEADFLOW_{name.upper()}_PORT"] == str(port)


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_gets_its_required_settings_and_only_variables_that_exist(name: str) -> None:
    env = compose()["services"][name]["environment"]
    required = {read.name for read in ref.reads(ref.service_settings()[name]) if read.default == "required"}
    assert sorted(required - {k for k, v in env.items() if v}) == []
    assert sorted(set(env) - KNOWN_NAMES - NOT_OURS) == []


def test_consumers_run_replicas_without_fixed_host_ports_and_the_rest_publish_theirs() -> None:
    spec = compose()["services"]
    partitions = int(spec["kafka-topics"]["environment"]["LEADFLOW_TOPIC_PARTITIONS"])
    for name in CONSUMERS:
        assert 2 <= int(spec[name]["deploy"]["replicas"]) <= partitions
        assert all(re.fullmatch(r"127\.0\.0\.1::\d+", p) for p in spec[name].get("ports", [])), name
    for name in ("ingest", "reporting"):
        assert spec[name]["ports"] == [f"127.0.0.1:{SERVICES[name]}:{SERVICES[name]}"]


def dockerfile_commands() -> list[Any]:
    import dockerfile  # Docker's own parser (BuildKit's, in Go)

    return list(dockerfile.parse_file(str(ROOT / "Dockerfile")))


def test_the_image_serves_every_service_and_exposes_every_port() -> None:
    commands = dockerfile_commands()
    final = commands[max(i for i, c in enumerate(commands) if c.cmd == "FROM") :]
    exposed = {int(port) for c in final if c.cmd == "EXPOSE" for port in c.value}
    assert exposed == set(SERVICES.values())
    env = {k: v for c in final if c.cmd == "ENV" for k, v in zip(c.value[::2], c.value[1::2], strict=True)}
    assert {name: env.get(f"LEADFLOW_{name.upper()}_HOST") for name in SERVICES} == dict.fromkeys(SERVICES, "0.0.0.0")
    (entrypoint,) = (c for c in final if c.cmd == "ENTRYPOINT")
    assert entrypoint.json
    assert entrypoint.value == ("leadflow",)
    (user,) = (c for c in final if c.cmd == "USER")
    assert re.fullmatch(r"\d+:\d+", user.value[0])  # numeric, for runAsNonRoot


def test_what_the_dockerfile_copies_is_in_the_build_context() -> None:
    ignored = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    ]
    copies = [c for c in dockerfile_commands() if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags)]
    sources = [source for c in copies for source in c.value[:-1]]
    assert {"pyproject.toml", "shared", "services"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not [p for p in ignored if fnmatch.fnmatch(source, p.removeprefix("**/"))], source


# --- Kubernetes ---------------------------------------------------------------------------------------

K8S = ROOT / "deploy/k8s"
K8S_VERSION = "1.30"  # the oldest Kubernetes the manifests are meant for


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return loaded


def manifests() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def applied() -> list[dict[str, Any]]:
    return [doc for name in kustomization()["resources"] for doc in yaml.safe_load_all((K8S / name).read_text())]


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in applied() if doc["kind"] == kind}


def pod_spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = of_kind("Deployment")[f"leadflow-{name}"]["spec"]["template"]["spec"]
    return spec


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    documents = [doc for doc in manifests() if doc["kind"] != "Kustomization"]
    assert len(documents) >= 17
    for doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    broken = of_kind("Deployment")["leadflow-scoring"]
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_example_and_sets_the_image() -> None:
    listed = kustomization()["resources"]
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert sorted(listed) == sorted(on_disk)
    assert len(set(listed)) == len(listed)
    images = {
        c["image"]
        for doc in applied()
        if doc["kind"] in ("Deployment", "Job")
        for c in doc["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"{image['name']}:latest" for image in kustomization()["images"]} == {"leadflow:latest"}


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_has_a_deployment_with_probes_resources_a_service_and_a_budget(name: str) -> None:
    spec = pod_spec(name)
    (container,) = spec["containers"]
    port = SERVICES[name]
    assert container["args"] == ["serve", name]
    assert container["ports"] == [{"name": "http", "containerPort": port}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {f"LEADFLOW_{name.upper()}_HOST": "0.0.0.0", f"LEADFLOW_{name.upper()}_PORT": str(port)}
    assert spec["enableServiceLinks"] is False  # else LEADFLOW_<NAME>_PORT=tcp://... from the Service
    labels = of_kind("Deployment")[f"leadflow-{name}"]["spec"]["template"]["metadata"]["labels"]
    service = of_kind("Service")[f"leadflow-{name}"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"][0]["targetPort"] == "http"
    budget = of_kind("PodDisruptionBudget")[f"leadflow-{name}"]["spec"]
    assert budget["selector"]["matchLabels"].items() <= labels.items()
    assert budget["selector"]["matchLabels"]["app.kubernetes.io/component"] == name


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_pod_gets_its_required_settings_and_only_variables_that_exist(name: str) -> None:
    (container,) = pod_spec(name)["containers"]
    sources = {ref["configMapRef"]["name"] for ref in container["envFrom"] if "configMapRef" in ref}
    secrets = {ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref}
    assert sources == {"leadflow-config"}
    assert secrets == {"leadflow-secrets"}
    config = of_kind("ConfigMap")["leadflow-config"]["data"]
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())["stringData"]
    given = set(config) | set(secret) | {e["name"] for e in container["env"]}
    required = {read.name for read in ref.reads(ref.service_settings()[name]) if read.default == "required"}
    assert sorted(required - given) == []
    assert sorted(given - KNOWN_NAMES - NOT_OURS) == []
    assert {"LEADFLOW_DATABASE_URL", "LEADFLOW_ADMIN_TOKEN", "LEADFLOW_SECRET_KEY"} <= set(secret)
    assert not {"LEADFLOW_DATABASE_URL", "LEADFLOW_ADMIN_TOKEN", "LEADFLOW_SECRET_KEY"} & set(config)


def test_consumer_replicas_fit_the_partitions() -> None:
    partitions = int(of_kind("ConfigMap")["leadflow-config"]["data"]["LEADFLOW_TOPIC_PARTITIONS"])
    for name in ("scoring", "routing", "reporting"):
        deployment = of_kind("Deployment")[f"leadflow-{name}"]["spec"]
        surge = deployment["strategy"]["rollingUpdate"]["maxSurge"]
        assert deployment["replicas"] >= 1, name
        assert deployment["replicas"] + surge <= partitions, name  # during a rollout too
    hpa = of_kind("HorizontalPodAutoscaler")
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpa.values()] == ["leadflow-ingest"]  # ingest only


def test_migrate_and_topics_jobs_run_the_one_shot_commands() -> None:
    jobs = of_kind("Job")
    assert jobs["leadflow-migrate"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    assert jobs["leadflow-topics"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics"]
    for job in jobs.values():
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_deploy_readme_points_to_the_one_configuration_table() -> None:
    text = (ROOT / "deploy/README.md").read_text()
    assert not re.search(r"^\| `LEADFLOW_", text, re.MULTILINE), "keep the one table in README.md"
    assert "leadflow config" in text


# --- what the image holds and the documents name ---------------------------------------------------------


def test_the_image_install_carries_every_file_the_services_read() -> None:
    """The image is a non-editable `pip install .`: a file outside the packages or the package-data
    patterns works under `make run` and is missing in production."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    include = config["packages"]["find"]["include"]
    # What setuptools' namespace discovery (the default for pyproject.toml) finds: every importable folder.
    packages = {
        ".".join(path.relative_to(ROOT).parts)
        for top in ROOT.iterdir()
        if any(fnmatch.fnmatch(top.name, p) for p in include)
        for path in top.glob("**/")
        if all(part.isidentifier() for part in path.relative_to(ROOT).parts)
        and any(fnmatch.fnmatch(".".join(path.relative_to(ROOT).parts), p) for p in include)
    }
    patterns = [p for ps in config["package-data"].values() for p in ps]
    missing = []
    for path in sorted([*(ROOT / "shared").rglob("*"), *(ROOT / "services").rglob("*")]):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        package = ".".join(path.parent.relative_to(ROOT).parts)
        carried = path.suffix == ".py" or any(fnmatch.fnmatch(path.name, p) for p in patterns)
        if package not in packages or not carried:
            missing.append(str(path.relative_to(ROOT)))
    assert missing == []
    assert "services.scoring.migrations.versions" in packages


def test_every_leadflow_name_in_the_documents_is_read_by_something() -> None:
    """A setting, an unprefixed name pydantic-settings also reads, or one compose reads from .env."""
    compose_only = {name for name in example_env() if name.startswith("LEADFLOW_")} - KNOWN_NAMES
    known = KNOWN_NAMES | set(ref.fallbacks()) | compose_only
    documents = [ROOT / "README.md", ROOT / "Dockerfile", ROOT / "docker-compose.yml", *ROOT.glob("deploy/**/*.*")]
    unknown = {
        str(path.relative_to(ROOT)): sorted(set(re.findall(r"LEADFLOW_[A-Z0-9_]*[A-Z0-9]", path.read_text())) - known)
        for path in documents
    }
    assert {k: v for k, v in unknown.items() if v} == {}
    readme = (ROOT / "README.md").read_text()
    assert sorted(name for name in compose_only if f"`{name}`" not in readme) == []


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_answers_the_paths_the_probes_and_scrapers_ask_for(name: str) -> None:
    import importlib

    settings = ref.service_settings()[name](admin_token="t" * 16, secret_key="k" * 16)
    app = importlib.import_module(f"services.{name}.app").create_app(settings)  # no lifespan: nothing starts
    paths = {getattr(route, "path", None) for route in app.routes}
    assert {"/readyz", "/healthz", "/metrics"} <= paths
    deployment = of_kind("Deployment")[f"leadflow-{name}"]["spec"]["template"]
    assert deployment["metadata"]["annotations"]["prometheus.io/path"] in paths
    assert deployment["metadata"]["annotations"]["prometheus.io/port"] == str(SERVICES[name])
