#!/usr/bin/env bash
# Unpack Debian's docker.io engine (dockerd, containerd, docker CLI, docker-init) into a private folder for the
# two-node Swarm test; nothing is installed system-wide, so the Podman setup stays as it is. Idempotent; the
# packages come from Debian's mirror through apt. Needs runc, iproute2 and util-linux (nsenter, unshare).
# Prints the PATH prefix to export: ZDG_SWARM_PATH=...
set -euo pipefail
CACHE=${ZDG_CACHE:-/var/cache/zdg}/dockerio
ROOT=$CACHE/root
if [[ ! -x $ROOT/usr/sbin/dockerd ]]; then
  need=()
  for tool in runc ip nsenter unshare; do
    command -v "$tool" >/dev/null || need+=("$tool")
  done
  if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc iproute2 util-linux >/dev/null
  fi
  rm -rf "$CACHE" && mkdir -p "$CACHE/debs"
  (cd "$CACHE/debs" && apt-get download -qq docker.io containerd tini 2>/dev/null \
    || { apt-get update -qq && apt-get download -qq docker.io containerd tini; })
  for deb in "$CACHE"/debs/*.deb; do
    dpkg-deb -x "$deb" "$ROOT"
  done
fi
echo "ZDG_SWARM_PATH=$ROOT/usr/bin:$ROOT/usr/sbin"
