#!/usr/bin/env bash
# Make `docker` and `docker-compose` work on a machine without Docker Engine: Podman serving the
# Docker API, plus a locally built Python base image (no registry needed). Idempotent; run as root.
# Prints the DOCKER_HOST to export. With a real Docker Engine (DOCKER_HOST reachable) it does nothing.
set -euo pipefail

if [[ -z "${DOCKER_HOST:-}" ]] && docker version --format '{{.Server.Os}}' >/dev/null 2>&1 \
    && ! docker version 2>/dev/null | grep -qi podman; then
  echo "DOCKER_HOST=unix:///var/run/docker.sock"  # a real Docker Engine: nothing to set up
  exit 0
fi
SOCK=${ZDG_PODMAN_SOCK:-/run/zdg-podman.sock}
CACHE=${ZDG_CACHE:-/var/cache/zdg}
BASE_IMAGE=${ZDG_BASE_IMAGE:-localhost/zdg-pybase:bookworm}
export DOCKER_HOST=${DOCKER_HOST:-unix://$SOCK}

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1 \
    && docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "DOCKER_HOST=$DOCKER_HOST"
  exit 0
fi

need=()
for tool in podman runc debootstrap docker-compose; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if ((${#need[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap docker-compose >/dev/null
fi

# crun cannot set RLIMIT_NPROC and refuses hybrid cgroups on these machines; runc works.
mkdir -p /etc/containers
if ! grep -q 'runtime = "runc"' /etc/containers/containers.conf 2>/dev/null; then
  cat >/etc/containers/containers.conf <<'EOF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
fi

if ! docker version >/dev/null 2>&1; then
  rm -f "$SOCK"
  mkdir -p "$CACHE"
  # from /: the service outlives this shell, and conmon fails once the folder it started in is gone
  (cd / && exec nohup podman system service --time=0 "unix://$SOCK" >"$CACHE.podman.log" 2>&1) &
  for _ in $(seq 50); do
    docker version >/dev/null 2>&1 && break
    sleep 0.2
  done
  docker version >/dev/null
fi

if ! podman image exists "$BASE_IMAGE"; then
  mkdir -p "$CACHE"
  tarball="$CACHE/zdg-pybase-bookworm.tar"
  if [[ ! -s "$tarball" ]]; then
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    rootfs="$CACHE/rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase \
      --include=python3,python3-venv,python3-pip,ca-certificates,libgl1,libglib2.0-0,curl \
      bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$CACHE/debootstrap.log"
    tar -C "$rootfs" -cf "$tarball.part" . && mv "$tarball.part" "$tarball"
    rm -rf "$rootfs"
  fi
  podman import "$tarball" "$BASE_IMAGE" >/dev/null
fi
echo "DOCKER_HOST=$DOCKER_HOST"
