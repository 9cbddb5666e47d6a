"""The `zdg` commands that deploy a graph: compose, stack, k8s, keys, build, bundle."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from zdg.cli_common import add_graph_args, write_or_print
from zdg.config import load_graph
from zdg.deploy.compose import ComposeFiles
from zdg.deploy.stack import HOST_ROOT
from zdg.shared_store import NoStorePlugin, store_service


def store_init() -> Path:
    """The store's init script, mounted into its service (a placeholder path when no application supplies a store:
    then no service mounts it)."""
    try:
        return store_service().init_file
    except NoStorePlugin:
        return Path("db/init.sql")


def store_image_help() -> str:
    try:
        store = store_service()
    except NoStorePlugin:
        return "the store's image (no application supplies a store here)"
    return f"the store's image, {store.what} (default {store.image})"


def cmd_compose(args: argparse.Namespace) -> int:
    from zdg.deploy.compose import build_compose, ensure_db_password, render, runs_store

    graph = load_graph(args.graph, args.overrides)
    out_dir = (args.output.parent if args.output else Path.cwd())
    doc = build_compose(graph, ComposeFiles(out_dir, args.graph, store_init()), args.overrides, args.host, args.store_image)
    text = render(doc, graph, "zdg compose" + (f" --host {args.host}" if args.host else ""), args.host)
    if args.output and runs_store(doc) and (env := ensure_db_password(out_dir)):
        print(f"wrote a random database password into {env} (compose reads it from there)", file=sys.stderr)
    return write_or_print(text, args.output, f"{len(doc['services'])} services")


def cmd_stack(args: argparse.Namespace) -> int:
    from zdg.deploy.stack import StackOptions, build_stack, render_stack

    graph = load_graph(args.graph, args.overrides)
    out_dir = (args.output.parent if args.output else Path.cwd())
    options = StackOptions(args.store_image, args.external_store, tuple(args.client))
    doc = build_stack(graph, ComposeFiles(out_dir, args.graph, store_init()), args.overrides, options)
    return write_or_print(render_stack(doc, graph, "zdg stack"), args.output, f"{len(doc['services'])} services")


def cmd_k8s(args: argparse.Namespace) -> int:
    from zdg.deploy.k8s import K8sOptions, build_manifests, write_manifests

    graph = load_graph(args.graph, args.overrides)
    options = K8sOptions(args.store_image, args.external_store, args.host_root, tuple(args.client))
    files = build_manifests(graph, store_init(), args.overrides, options)
    written = write_manifests(files, graph, args.output, "zdg k8s")
    print(f"wrote {len(written)} files to {args.output}/ (kubectl apply -k {args.output})", file=sys.stderr)
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from zdg.curve import LOCAL_BOX, generate_keys
    from zdg.deploy.compose import boxes
    from zdg.wiring import compile_plan

    graph = load_graph(args.graph)
    plan = compile_plan(graph)
    secure = [link for link in plan.external_topics() if link.secure]
    hosts = sorted(set(boxes(graph)) | {link.src_host or LOCAL_BOX for link in secure})
    if not hosts:
        raise LookupError(f"{args.graph}: no node has host: and no topic is secure, so no keys are needed")
    if args.client and not secure:
        raise LookupError(f"{args.graph}: no topic is secure (`secure: true` on an edge without `to:`): clients need no keys")
    from zdg.deploy.images import CONTAINER_UID

    # root gives the boxes' folders to the images' user, the only one (besides root) that may read them in a container
    box_owner = CONTAINER_UID if os.geteuid() == 0 else None
    for folder in generate_keys(hosts, args.output, args.client, box_owner):
        what = "a subscriber's: zdg sub --keys" if folder.name in args.client else f"mount on box {folder.name}"
        print(f"{folder}  ({what}; holds its secret key)")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from zdg.deploy.images import build_images

    for tag in build_images(args.base_image, args.store, args.gpu, args.ca_file):
        print(f"built {tag}")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from zdg.deploy.images import bundle

    graph = load_graph(args.graph, args.overrides)
    images = bundle(graph, args.overrides, args.host, args.output, args.store_image, args.keys)
    print(f"wrote {args.output} ({', '.join(images)}); on the box: tar -xf {args.output.name} && "
          f"./{args.output.name.split('.')[0]}/load.sh")
    return 0


def add_orchestrator_args(p: argparse.ArgumentParser, external_store_help: str) -> None:
    """What `zdg stack` and `zdg k8s` share: the store image, or an external store, and secure topics' clients."""
    p.add_argument("--store-image", help=store_image_help())
    p.add_argument("--external-store", action="store_true", help=external_store_help)
    p.add_argument("--client", action="append", default=[], metavar="NAME",
                   help="a subscriber of the graph's secure topics (as given to `zdg keys --client`); repeatable")


def add_deploy_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compose", help="write a Compose file for a graph (one service per node)")
    add_graph_args(p)
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout); mounts are relative to it")
    p.add_argument("--host", help="only the services of this box (nodes with host: NAME)")
    p.add_argument("--store-image", help=store_image_help())
    p.set_defaults(func=cmd_compose)

    p = sub.add_parser("stack", help="write a Docker Swarm stack for every box of a graph (docker stack deploy -c)")
    add_graph_args(p)
    p.add_argument("-o", "--output", type=Path, help="file to write (default: stdout); the configs' and secrets' files "
                   "are relative to it")
    add_orchestrator_args(p, "no store service: nodes use $ZDG_DSN, set when deploying")
    p.set_defaults(func=cmd_stack)

    p = sub.add_parser("k8s", help="write Kubernetes manifests for a graph into a folder (kubectl apply -k DIR)")
    add_graph_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="folder to write (one file per node)")
    add_orchestrator_args(p, "no store StatefulSet: nodes read ZDG_DSN from the Secret zdg-dsn (key dsn)")
    p.add_argument("--host-root", default=HOST_ROOT,
                   help="folder on every Kubernetes node holding models/, data/ and out/ (default %(default)s)")
    p.set_defaults(func=cmd_k8s)

    p = sub.add_parser("keys", help="make CURVE key pairs for the boxes of a graph and the subscribers of its secure "
                       "topics (one folder each)")
    p.add_argument("graph", type=Path)
    p.add_argument("-o", "--output", type=Path, default=Path("keys"), help="default %(default)s/")
    p.add_argument("--client", action="append", default=[], metavar="NAME",
                   help="a subscriber of the graph's secure topics (repeatable); boxes without host: are 'local'")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("build", help="build the container images (docker CLI; DOCKER_HOST picks the engine)",
                       description="Build the container images. Each image's build stage stays tagged "
                       "IMAGE:VERSION-build (the dependencies, cached for the next build); the untagged images zdg's "
                       "builds leave (older build stages, images a rebuild replaced) are removed, and no others.")
    p.add_argument("--base-image", help="FROM image for all (default: the Dockerfiles' python:3.11-slim-bookworm)")
    p.add_argument("--store", action="store_true", help="also build a local image of the store (zdg-store)")
    p.add_argument("--gpu", action="store_true", help="the applications' images from their GPU Dockerfiles (a CUDA base)")
    p.add_argument("--ca-file", type=Path, help="CA bundle pip needs behind a proxy (used while building only)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("bundle", help="one tar for an offline box: images, compose file, graph, load.sh")
    add_graph_args(p)
    p.add_argument("-o", "--output", type=Path, required=True, help="e.g. box.tar")
    p.add_argument("--host", help="the box to bundle (nodes with host: NAME)")
    p.add_argument("--keys", type=Path, help="key folder from `zdg keys`; the box's own folder goes in the bundle")
    p.add_argument("--store-image", help=store_image_help())
    p.set_defaults(func=cmd_bundle)
