"""Starting node processes three ways, side by side: zdg's zygote (zdg/zygote.py), the standard library's
forkserver with the same modules preloaded (`multiprocessing.set_forkserver_preload`), and fresh interpreters.
Each child imports the face nodes' heavy modules (already loaded where preloaded) and exits. Prints, per way, the
time from nothing to `--children` children done (the forker's own preload included: what `zdg run` waits for at
start), then a second batch on the warm forker (a restart), and the ratios to fresh interpreters.
    python bench/forker.py [--children 6]
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import subprocess
import sys
import time

from zdg.zygote import Zygote

MODULES = ["numpy", "cv2", "onnxruntime", "insightface.utils.face_align", "psycopg", "pgvector.psycopg", "scipy.optimize"]


def ready(modules: list[str]) -> None:
    """A child's work: have the modules (a node's imports)."""
    for name in modules:
        importlib.import_module(name)


def by_zygote(children: int) -> tuple[float, float]:
    start = time.perf_counter()
    zygote = Zygote(MODULES)
    try:
        batches = []
        for _ in range(2):
            begun = time.perf_counter()
            spawned = [zygote.spawn("__main__:ready", {"modules": MODULES}, {"PATH": "/usr/bin:/bin"}, f"child{i}")
                       for i in range(children)]
            codes = [p.wait() for p in spawned]
            assert codes == [0] * children, codes
            batches.append(time.perf_counter() - (start if not batches else begun))
        return batches[0], batches[1]
    finally:
        zygote.close()


def by_forkserver(children: int) -> tuple[float, float]:
    start = time.perf_counter()
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(MODULES)
    batches = []
    for _ in range(2):
        begun = time.perf_counter()
        spawned = [context.Process(target=ready, args=(MODULES,), name=f"child{i}") for i in range(children)]
        for p in spawned:
            p.start()
        for p in spawned:
            p.join()
        assert [p.exitcode for p in spawned] == [0] * children
        batches.append(time.perf_counter() - (start if not batches else begun))
    return batches[0], batches[1]


def by_interpreters(children: int) -> tuple[float, float]:
    code = f"import importlib; [importlib.import_module(m) for m in {MODULES!r}]"
    batches = []
    for _ in range(2):
        begun = time.perf_counter()
        spawned = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(children)]
        assert [p.wait() for p in spawned] == [0] * children
        batches.append(time.perf_counter() - begun)
    return batches[0], batches[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--children", type=int, default=6)
    args = ap.parse_args()
    fresh = by_interpreters(args.children)
    for name, way in (("zygote", by_zygote), ("forkserver", by_forkserver)):
        first, again = way(args.children)
        print(f"{name:<12} first batch {first:6.2f} s ({fresh[0] / first:4.1f}x fresh interpreters), "
              f"second {again:6.2f} s ({fresh[1] / again:4.1f}x)")
    print(f"{'interpreters':<12} first batch {fresh[0]:6.2f} s, second {fresh[1]:6.2f} s ({args.children} children each)")


if __name__ == "__main__":
    main()
