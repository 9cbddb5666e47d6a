"""The image the face nodes run (`Deploy.image` zdg-faces), as `zdg build` makes it (the `zdg.images` entry point)."""

from __future__ import annotations

from pathlib import Path

from zdg.deploy.images import AppImage

DOCKER = Path(__file__).resolve().parents[2] / "docker"

FACES = AppImage("zdg-faces", DOCKER / "faces.Dockerfile", DOCKER / "faces-gpu.Dockerfile")
