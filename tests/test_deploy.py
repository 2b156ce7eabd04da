"""deploy/ against the app: manifests parse, and images, Compose and Kubernetes name only the
entrypoints, ports, routes and environment variables that the worker really has."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from streaming.settings import StreamSettings, reference_table, variables
from tests.conftest import ROOT
from tests.deploy_support import (
    DEPLOY,
    DOCKERFILES,
    KUSTOMIZATIONS,
    compose,
    env_file,
    read_image,
    worker_deployment,
    yaml_documents,
)

WORKER_ENV = DEPLOY / "k8s" / "base" / "worker.env"
SETTING_NAMES = {name for name, _, _ in variables()}
DEFAULTS = {name: default for name, default, _ in variables()}
IMAGE_ONLY = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK",
              "DEBIAN_FRONTEND", "PATH"}  # fmt: skip


def app_routes() -> set[str]:
    return set(re.findall(r'@app\.page\("([^"]+)"\)', (ROOT / "faust_app.py").read_text()))


def app_commands() -> set[str]:
    done = subprocess.run([sys.executable, "faust_app.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    commands = done.stdout.split("Commands:", 1)[1]
    return {line.split()[0] for line in commands.splitlines() if line.strip()}


def test_every_manifest_parses():
    files = [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]
    assert len(files) >= 10
    for path in files:
        assert yaml_documents(path), f"{path} holds no YAML document"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed: kustomize rendering not checked")
@pytest.mark.parametrize("overlay", KUSTOMIZATIONS)
def test_kustomizations_render(overlay):
    done = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s" / overlay)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    kinds = [doc["kind"] for doc in yaml_documents(done.stdout)]
    assert {"Deployment", "ConfigMap", "PodDisruptionBudget", "Service"} <= set(kinds)
    if overlay == "gpu":
        rendered = done.stdout
        assert "nvidia.com/gpu: 1" in rendered and "LOGBERT_PROVIDER: cuda" in rendered and ":cuda" in rendered


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_run_the_worker_with_settings_the_app_reads(dockerfile):
    image = read_image(dockerfile)
    assert image.entrypoint == ["python", "faust_app.py"] and image.cmd[0] == "worker"
    assert image.user.split(":")[0] == "10001", "the images run as a non-root user"
    unknown = set(image.env) - SETTING_NAMES - IMAGE_ONLY
    assert not unknown, f"{dockerfile.name} sets variables the worker does not read: {unknown}"
    assert image.expose == [int(image.env["LOGBERT_WEB_PORT"])] == [int(DEFAULTS["LOGBERT_WEB_PORT"])]
    probe = " ".join(image.healthcheck)
    assert "/health" in probe and "/health" in app_routes() and "LOGBERT_WEB_PORT" in probe
    for sources, _ in image.copies:
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile.name} copies {source}, which does not exist"


def test_images_copy_every_module_the_worker_imports():
    """Everything faust_app imports from this repository is in the images (and no torch)."""
    code = (
        "import sys, faust_app; root = sys.argv[1]\n"
        "names = {m.__name__.split('.')[0] for m in list(sys.modules.values())\n"
        "         if (getattr(m, '__file__', None) or '').startswith(root)}\n"
        "print(' '.join(sorted(names))); assert 'torch' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(ROOT)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    imported = set(done.stdout.split()) - {"tests"}
    for dockerfile in DOCKERFILES:
        copied = {
            source.removesuffix(".py").rstrip("/") for sources, _ in read_image(dockerfile).copies for source in sources
        }
        assert imported <= copied, f"{dockerfile.name} misses {imported - copied}"


def test_compose_and_kubernetes_use_the_same_settings_the_worker_reads():
    shared = env_file(WORKER_ENV)
    assert set(shared) <= SETTING_NAMES, f"worker.env names unknown variables: {set(shared) - SETTING_NAMES}"
    services = compose()["services"]
    for name in ("kafka", "topics", "worker", "producer"):
        assert name in services
    worker = services["worker"]
    assert worker["env_file"] == "k8s/base/worker.env" and set(worker["environment"]) <= SETTING_NAMES
    assert worker["command"] == read_image(DEPLOY / "Dockerfile").cmd
    assert any(volume.endswith(f":{shared['LOGBERT_MODEL_DIR']}:ro") for volume in worker["volumes"])
    assert worker["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["producer"]["entrypoint"][2] in app_commands()
    gpu = (DEPLOY / "k8s" / "gpu" / "kustomization.yaml").read_text()
    assert set(re.findall(r"- (\w+)=", gpu)) <= SETTING_NAMES
    secret = next(d for d in yaml_documents(DEPLOY / "k8s" / "base" / "secret.example.yaml"))
    assert set(secret["stringData"]) <= SETTING_NAMES


def test_kubernetes_probes_ports_and_volumes_match_the_worker():
    shared = env_file(WORKER_ENV)
    spec = worker_deployment()["spec"]["template"]
    container = spec["spec"]["containers"][0]
    assert container["args"] == read_image(DEPLOY / "Dockerfile").cmd
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    assert port == int(shared["LOGBERT_WEB_PORT"]) == int(spec["metadata"]["annotations"]["prometheus.io/port"])
    assert spec["metadata"]["annotations"]["prometheus.io/path"] in app_routes()
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in app_routes() and container[probe]["httpGet"]["port"] == "http"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[shared["LOGBERT_MODEL_DIR"]]["readOnly"] is True
    assert any(shared["LOGBERT_DATA_DIR"].startswith(path + "/") for path in mounts), "the data dir must be writable"
    assert spec["spec"]["securityContext"]["runAsUser"] == 10001
    assert spec["spec"]["terminationGracePeriodSeconds"] >= 60
    names = [e["configMapRef"]["name"] for e in container["envFrom"] if "configMapRef" in e]
    assert names == ["logbert-worker"]


def test_readme_carries_the_current_configuration_reference():
    readme = (ROOT / "README.md").read_text()
    assert reference_table() in readme, "README is stale: paste `python faust_app.py settings-reference` into it"


def test_every_environment_variable_read_in_the_code_is_in_the_reference():
    """The worker's own modules: what they read from the environment is in the reference table."""
    read = set()
    for path in [p for d in ("agents", "streaming", "models") for p in (ROOT / d).rglob("*.py")]:
        read |= set(re.findall(r"""env(?:iron)?(?:\.get)?[\[(]["'](\w+)["']""", path.read_text()))
    assert "KAFKA_SECURITY_PROTOCOL" in read, "the pattern must find what the code reads"
    assert read <= SETTING_NAMES, f"variables read but not documented: {read - SETTING_NAMES}"


def test_settings_reject_bad_values_with_the_variable_name(monkeypatch):
    monkeypatch.setenv("LOGBERT_PARTITIONS", "four")
    with pytest.raises(ValueError, match="LOGBERT_PARTITIONS='four'"):
        StreamSettings()


def test_nothing_is_deserialised_with_pickle_eval_or_jsonpickle():
    """Model directories and Kafka values come from outside: only JSON parsers and ONNX Runtime read them."""
    unsafe = re.compile(
        r"\bimport (c?pickle|jsonpickle|marshal|dill|shelve)\b|\bfrom (c?pickle|jsonpickle|marshal|dill|shelve) import"
        r"|(?<![.\w])(eval|exec)\(|torch\.load\(|yaml\.(unsafe_)?load\(|allow_pickle\s*=\s*True|jsonpickle\.decode"
    )
    offenders = []
    for directory in ("agents", "streaming", "models", "logkeys", "sequences", "commands", "evaluation", "loggen"):
        for path in (ROOT / directory).rglob("*.py"):
            offenders += [f"{path.relative_to(ROOT)}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1)
                          if unsafe.search(line)]  # fmt: skip
    assert offenders == []
    assert unsafe.search("x = pickle_free; eval(text)") and not unsafe.search("model.eval()")
