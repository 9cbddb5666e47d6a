"""Find ONNX model packs and open them through insightface's model zoo on onnxruntime."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import onnxruntime as ort

from nodes.vision.providers import ORT_PROVIDERS, Providers, choose_providers
from zdg.node import FatalNodeError

log = logging.getLogger("zdg.models")
DOWNLOADABLE_PACKS = ("buffalo_l", "buffalo_m", "buffalo_s", "buffalo_sc", "antelopev2")
def model_roots(model_root: str | None) -> list[Path]:
    """Where packs are looked for: the node's model root (its param, else $ZDG_MODEL_ROOT), then ~/.insightface."""
    roots = [model_root, str(Path.home() / ".insightface")]
    return [Path(r).expanduser() for r in roots if r]


def _pack_dirs(pack: str, roots: list[Path]) -> list[Path]:
    # insightface lays packs out as <root>/models/<pack>; a flat <root>/<pack> is accepted too.
    return [d for root in roots for d in (root / "models" / pack, root / pack)]


def _download(pack: str, root: Path) -> Path | None:
    try:
        from insightface.utils.storage import ensure_available

        return Path(ensure_available("models", pack, root=str(root)))
    except Exception as exc:  # noqa: BLE001 - any network or archive failure means "not available"
        log.warning("could not download model pack %s: %s", pack, exc)
        return None


def find_model_files(pack: str, model: str | None, model_root: str | None) -> list[Path]:
    """ONNX files to try, in order: an explicit path, a glob in the pack, or every file of the pack."""
    if model and model.endswith(".onnx") and Path(model).expanduser().is_file():
        return [Path(model).expanduser()]
    roots = model_roots(model_root)
    dirs = [d for d in _pack_dirs(pack, roots) if d.is_dir()]
    if not dirs and pack in DOWNLOADABLE_PACKS:
        downloaded = _download(pack, roots[-1])
        dirs = [downloaded] if downloaded and downloaded.is_dir() else []
    files = sorted(f for d in dirs for f in d.glob(model or "*.onnx"))
    if not files:
        looked = ", ".join(str(d) for d in _pack_dirs(pack, roots))
        raise FatalNodeError(f"model pack {pack!r}: no {model or '*.onnx'} found (looked in {looked}); "
                             "set ZDG_MODEL_ROOT or the node's model_root/model params")
    return files


def session_options(threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def load_model(pack: str, model: str | None, model_root: str | None, threads: int, kind: str,
               providers: Providers = "cpu") -> Any:
    """The first model of the pack that insightface routes to class `kind` (SCRFD, ArcFaceONNX), on the execution
    providers asked for (`providers`); its `ctx_id` is what insightface's prepare() takes for them."""
    from insightface.model_zoo import get_model

    files = find_model_files(pack, model, model_root)
    chosen = choose_providers(providers, ort.get_available_providers())
    for path in files:
        loaded = get_model(str(path), providers=chosen, sess_options=session_options(threads))
        if type(loaded).__name__ == kind:
            running = loaded.session.get_providers()
            loaded.ctx_id = 0 if running[0] != ORT_PROVIDERS["cpu"] else -1  # prepare(-1) would force the CPU
            log.info("loaded %s from %s on %s", kind, path, ", ".join(running))
            return loaded
    raise FatalNodeError(f"model pack {pack!r}: none of {[str(f) for f in files]} is a {kind} model")
