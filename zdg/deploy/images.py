"""`zdg build` and `zdg bundle`: container images and one-file bundles for offline boxes (docker CLI)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from zdg.config import Graph
from zdg.deploy.compose import (
    BASE_IMAGE,
    ComposeFiles,
    build_compose,
    ensure_db_password,
    images_of,
    render,
    runs_store,
    tagged,
)
from zdg.registry import load_entry_point
from zdg.shared_store import store_service

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
CA_DIR = REPO / "docker" / "build-ca"  # a CA bundle put here is used by pip during builds only
IMAGE_GROUP = "zdg.images"
BUILD_STAGE = re.compile(r"^FROM .+ AS build$", re.MULTILINE | re.IGNORECASE)
IMAGE_LABEL = "zdg.image"  # every stage of zdg's Dockerfiles has it (images built FROM zdg's inherit it)


@dataclass(frozen=True)
class AppImage:
    """An image an application's nodes run (their `Deploy.image`), built FROM zdg's base image by `zdg build`."""

    name: str
    dockerfile: Path
    gpu_dockerfile: Path | None = None  # `zdg build --gpu` builds this one instead (a CUDA base)

    @property
    def tag(self) -> str:
        return tagged(self.name)


def app_images() -> list[AppImage]:
    """The images installed applications build (entry point group `zdg.images`), by entry point name."""
    return [load_entry_point(ep) for ep in sorted(entry_points(group=IMAGE_GROUP), key=lambda ep: ep.name)]


CONTAINER_UID = 1000  # the images' user (`useradd --uid 1000 zdg` in the Dockerfile)
LOAD_SH = """#!/bin/sh
# Load this bundle's images and start its graph on this box: ./load.sh
# Models: put the model packs in ./models or export ZDG_MODEL_ROOT; clips in ./data or export ZDG_DATA_ROOT.
set -eu
cd "$(dirname "$0")"
docker load -i images.tar
missing=""
for image in {images}; do
  docker image inspect "$image" >/dev/null 2>&1 || missing="$missing $image"
done
if [ -n "$missing" ]; then
  echo "load.sh: images.tar did not provide:$missing" >&2
  exit 1
fi
mkdir -p out
if docker compose version >/dev/null 2>&1; then docker compose up -d; else docker-compose up -d; fi
echo "started; results in ./out, logs with: docker compose logs -f"
"""


class DockerError(RuntimeError):
    """A docker command failed, or an image a bundle needs is not here."""


def docker(*args: str, capture: bool = False) -> str:
    """Run the docker CLI (DOCKER_HOST decides which engine); raise DockerError with its message."""
    env = {**os.environ, "DOCKER_BUILDKIT": os.environ.get("DOCKER_BUILDKIT", "0")}
    try:
        done = subprocess.run(["docker", *args], env=env, text=True,
                              stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise DockerError("docker CLI not found (install Docker, or see docker/setup-podman.sh)") from None
    if done.returncode:
        raise DockerError(f"docker {args[0]} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout or ""


def build_images(base_image: str | None, store: bool, gpu: bool, ca_file: Path | None) -> list[str]:
    """Build the base image, the applications' images (their GPU variants with `gpu`) and, with `store`, a local
    image of the store; return their tags."""
    args = [f"--build-arg=BASE_IMAGE={base_image}"] if base_image else []
    staged = CA_DIR / "ca.crt"
    if ca_file:
        shutil.copyfile(ca_file, staged)
    try:
        build(REPO / "Dockerfile", BASE_IMAGE, args)
        built = [BASE_IMAGE]
        for image in app_images():
            dockerfile = image.gpu_dockerfile if gpu and image.gpu_dockerfile else image.dockerfile
            build(dockerfile, image.tag, [f"--build-arg=ZDG_IMAGE={BASE_IMAGE}"])
            built.append(image.tag)
        if store:
            spec = store_service()
            if spec.dockerfile is None:
                raise DockerError(f"the store plugin ({spec.what}) has no image to build: use --store-image")
            build(spec.dockerfile, spec.build_image, args)
            built.append(spec.build_image)
    finally:
        staged.unlink(missing_ok=True)
        prune_untagged()
    return built


def build(dockerfile: Path, tag: str, args: list[str]) -> None:
    """Build `tag`; a stage named `build` is tagged `TAG-build` first, so that the next build finds its layers (the
    dependencies) cached after the untagged images are removed."""
    common = ["build", "--network", "host", *args, "-f", str(dockerfile)]
    if BUILD_STAGE.search(dockerfile.read_text()):
        docker(*common, "--target", "build", "-t", f"{tag}-build", str(REPO))
    docker(*common, "-t", tag, str(REPO))


def prune_untagged() -> None:
    """Remove zdg's untagged images (build stages and images a rebuild replaced: gigabytes per build)."""
    try:
        docker("image", "prune", "--force", "--filter", f"label={IMAGE_LABEL}", capture=True)
    except DockerError as exc:
        log.warning("could not remove zdg's untagged images: %s", exc)


def missing_images(images: list[str]) -> list[str]:
    return [image for image in images if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode]


def bundle(graph: Graph, overrides: list[str], host: str | None, out: Path, store_image: str | None,
           keys_dir: Path | None) -> list[str]:
    """Write `out` (a tar): images.tar, docker-compose.yml, graph.yaml, db/init.sql, keys/ and load.sh."""
    images = images_of(graph, host, store_image)
    missing = missing_images(images)
    if missing:
        raise DockerError(f"cannot bundle: image(s) not found here: {', '.join(missing)} (build them with `zdg build`)")
    with tempfile.TemporaryDirectory(prefix="zdg-bundle-") as tmp:
        box = Path(tmp) / (out.name.split(".")[0] or "box")
        (box / "db").mkdir(parents=True)
        shutil.copyfile(graph.path, box / "graph.yaml")
        doc = build_compose(graph, ComposeFiles(box, box / "graph.yaml", box / "db" / "init.sql"), overrides, host,
                            store_image)
        if runs_store(doc):
            shutil.copyfile(store_service().init_file, box / "db" / "init.sql")
            ensure_db_password(box)
        for copied in (box / "graph.yaml", box / "db" / "init.sql"):
            if copied.exists():
                copied.chmod(0o644)  # mounted into containers whose users are not this one (no personal data)
        (box / "docker-compose.yml").write_text(render(doc, graph, "zdg bundle", host))
        if keys_dir is not None and host is not None:
            if not (keys_dir / host).is_dir():
                raise DockerError(f"{keys_dir / host}: no key folder for box {host!r} (make them with `zdg keys`)")
            shutil.copytree(keys_dir / host, box / "keys" / host)
        load = box / "load.sh"
        load.write_text(LOAD_SH.format(images=" ".join(images)))
        load.chmod(0o755)
        docker("save", "-o", str(box / "images.tar"), *images)
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(out, "w") as tar:
            tar.add(box, arcname=box.name)
    return images
