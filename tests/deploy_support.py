"""Reading deploy/: the Dockerfiles' instructions and the manifests, as the tests compare them with the app."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
DOCKERFILES = (DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.cuda")
KUSTOMIZATIONS = ("base", "gpu", "autoscaling")


@dataclass
class Image:
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], str]] = field(default_factory=list)  # (sources, destination)
    workdir: str = "/"
    user: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    expose: list[int] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def read_image(dockerfile: Path) -> Image:
    image = Image()
    for word, args in instructions(dockerfile):
        if word == "ENV":
            image.env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
        elif word == "COPY" and not args.startswith("--from"):
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            image.copies.append((parts[:-1], parts[-1]))
        elif word == "WORKDIR":
            image.workdir = args
        elif word == "USER":
            image.user = args
        elif word in ("ENTRYPOINT", "CMD"):
            setattr(image, word.lower(), json.loads(args))
        elif word == "EXPOSE":
            image.expose = [int(p.split("/")[0]) for p in args.split()]
        elif word == "HEALTHCHECK":
            image.healthcheck = json.loads(args[args.index("CMD") + 3 :].strip())
    return image


def stage_image_files(image: Image, into: Path) -> Path:
    """Copies what the image's COPY instructions copy into a directory standing in for its WORKDIR."""
    import shutil

    for sources, destination in image.copies:
        target = into / destination.removeprefix("./")
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
    return into


def env_file(path: Path) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def yaml_documents(source: Path | str) -> list[dict]:
    """The documents of a YAML file (a Path) or of YAML text."""
    text = source.read_text() if isinstance(source, Path) else source
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def compose() -> dict:
    return yaml_documents(DEPLOY / "docker-compose.yml")[0]


def worker_deployment() -> dict:
    return next(d for d in yaml_documents(DEPLOY / "k8s" / "base" / "deployment.yaml") if d["kind"] == "Deployment")
