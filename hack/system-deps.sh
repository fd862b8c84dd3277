#!/usr/bin/env bash
# Installs the Debian packages the demo and the tests need, when they are missing:
# Go (builds the control plane), openssl (its PKI), Prometheus (a real one for the
# analysis provider's tests), and the real node's runtime. Idempotent: does nothing when
# all are present.
set -euo pipefail

missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v openssl >/dev/null || missing+=(openssl)
command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
# libfaketime: the clock-skew fault test runs the operator minutes ahead of the API server.
command -v faketime >/dev/null || missing+=(faketime)
# The real node (testbed/cluster/realnode.py): containerd and runc run its pods, the CNI
# plugins give them the test run's own bridge, busybox is the one binary of its small images.
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
[ -x /bin/busybox ] || missing+=(busybox-static)
command -v ip >/dev/null || missing+=(iproute2)
# The project's Dockerfiles, built without a Docker engine (testbed/cluster/dockerfile_images.py):
# buildah builds them, debootstrap assembles their python:3.11-slim base from Debian packages.
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo)
  else
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "installing them needs root: run 'sudo apt-get install ${missing[*]}' (or this make target as root)" >&2
    exit 1
  fi
else
  as_root=()
fi
echo "installing Debian packages: ${missing[*]}" >&2
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
