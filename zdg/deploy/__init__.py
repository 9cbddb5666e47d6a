"""Deployment: compose files, Swarm stacks, Kubernetes manifests, images and bundles, all from a graph and
wired by the same rules as `zdg run` (zdg.wiring)."""
