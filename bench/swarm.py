"""Two-node Docker Swarm figures, measured on the real two-node Swarm of the swarm suite (tests/containers/swarm.py).

1. Messages/s of tests/containers/two_boxes.yaml (counter -> square x2 on one box, collect on the other; the
   edge between boxes CURVE-encrypted over the overlay network) on two Swarm nodes, against the same graph with
   every node on one Swarm node (no edge crosses boxes), runs alternating, measured from the collector's file.
2. Time from `docker stack deploy` to the first re-id decision of graphs/video_reid.yaml on 4 s of the shared
   clip, camera side on one node and store side on the other (fresh store each run).

Run as root, with the images built (`zdg build --store`) on the engine DOCKER_HOST names:
  export $(docker/setup-swarm-engine.sh | tail -1)
  python bench/swarm.py --messages 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.containers.conftest import zdg  # noqa: E402
from tests.containers.swarm import TwoNodeSwarm, deploy_face_graph, missing_support, out_folder  # noqa: E402
from zdg.deploy.compose import BASE_IMAGE, FACES_IMAGE  # noqa: E402
from zdg.deploy.images import STORE_BUILD_IMAGE  # noqa: E402

TWO_BOXES = REPO / "tests" / "containers" / "two_boxes.yaml"


def demo_graph(folder: Path, one_node: bool) -> Path:
    spec = yaml.safe_load(TWO_BOXES.read_text())
    if one_node:
        for node in spec["nodes"]:
            node["host"] = "central"
    path = folder / "two_boxes.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def messages_per_s(swarm: TwoNodeSwarm, folder: Path, stack: str, one_node: bool, messages: int) -> float:
    """The collector's rate from its first line to its last (start-up excluded)."""
    folder.mkdir(parents=True)
    graph = demo_graph(folder, one_node)
    zdg("keys", str(graph), "-o", str(folder / "keys"))
    zdg("stack", str(graph), "--set", f"counter.count={messages}", "--set", "counter.rate=0",
        "-o", str(folder / "stack.yml"))
    out = out_folder(folder / "out") / "collect.jsonl"
    swarm.deploy(folder, stack, {"ZDG_OUT": str(out.parent)})
    try:
        deadline = time.monotonic() + 600
        while lines(out) == 0:
            assert time.monotonic() < deadline, swarm.logs(stack)
            time.sleep(0.05)
        first, first_at = lines(out), time.monotonic()
        while (n := lines(out)) < messages:
            assert time.monotonic() < deadline, (n, swarm.logs(stack))
            time.sleep(0.05)
        rate = (messages - first) / (time.monotonic() - first_at)
        swarm.wait_complete(stack, 120)
        return rate
    finally:
        swarm.remove(stack)


def first_decision_s(swarm: TwoNodeSwarm, folder: Path, stack: str) -> tuple[float, float]:
    """Seconds from `docker stack deploy` to the first decision on the outside topic, and to the run's end."""
    folder.mkdir(parents=True)
    started, sub = deploy_face_graph(swarm, folder, stack)
    try:
        assert sub.stdout.readline(), swarm.logs(stack)
        first = time.monotonic() - started
        swarm.wait_complete(stack, 400)
        return first, time.monotonic() - started
    finally:
        sub.kill()
        swarm.remove(stack)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reason = missing_support(os.environ.get("ZDG_SWARM_PATH"))
    if reason:
        print(f"no two-node Swarm here: {reason}", file=sys.stderr)
        return 1
    swarm = TwoNodeSwarm(os.environ["ZDG_SWARM_PATH"])
    work = Path(tempfile.mkdtemp(prefix="zdg-bench-swarm-"))
    try:
        swarm.start()
        swarm.load_images([BASE_IMAGE, FACES_IMAGE, STORE_BUILD_IMAGE], dict(os.environ))
        rates: dict[str, list[float]] = {"two nodes": [], "one node": []}
        for i in range(args.repeat):
            for label in rates:
                rate = messages_per_s(swarm, work / f"demo{i}{label[:3]}", f"d{i}{label[:3]}", label == "one node",
                                      args.messages)
                rates[label].append(rate)
                print(f"run {i + 1} {label}: {rate:,.0f} msgs/s", flush=True)
        two, one = (statistics.median(rates[k]) for k in ("two nodes", "one node"))
        print(f"\nmessages/s, median of {args.repeat} ({args.messages} messages each): two nodes {two:,.0f}, "
              f"one node {one:,.0f}, ratio two/one {two / one:.2f}")
        decisions = [first_decision_s(swarm, work / f"face{i}", f"vr{i}") for i in range(args.repeat)]
        print(f"docker stack deploy -> first re-id decision (s): {', '.join(f'{f:.1f}' for f, _ in decisions)}; "
              f"-> every node complete: {', '.join(f'{e:.1f}' for _, e in decisions)}")
    finally:
        swarm.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
