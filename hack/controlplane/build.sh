#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, etcd and kwok
# from Go modules (no release downloads reach these machines) and caches them by
# version. Prints the bin directory. Builds only what is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}/controlplane/${K8S_VERSION}-${KWOK_VERSION}"
bin="$cache/bin"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

need=()
for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl etcd kwok; do
  [ -x "$bin/$b" ] || need+=("$b")
done
if [ ${#need[@]} -eq 0 ]; then echo "$bin"; exit 0; fi
echo "building: ${need[*]} (k8s $K8S_VERSION, kwok $KWOK_VERSION) into $bin" >&2
start=$(date +%s)

# The wrapper module: k8s.io/kubernetes cannot be `go install`ed because its
# go.mod replaces every staging module with ./staging/...; we pin each of those
# to the matching v0.Y.Z instead. The list is read from k8s's own go.mod, so it
# stays right when K8S_VERSION moves.
src="$cache/src"
mkdir -p "$src/etcd"
k8s_gomod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
staging_version="v0.${K8S_VERSION#v1.}"
go_directive="$(awk '$1=="go"{print $2; exit}' "$k8s_gomod")"
{
  echo "module modeldeploy.dev/controlplane"
  echo
  echo "go ${go_directive}"
  echo
  echo "require k8s.io/kubernetes ${K8S_VERSION}"
  echo
  grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$k8s_gomod" \
    | awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} > "$src/go.mod"
# etcd: the version k8s pins, via its own main package.
cat > "$src/etcd/main.go" <<'GO'
// Command etcd runs the etcd server at the version Kubernetes pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
cat > "$src/tools.go" <<'GO'
//go:build tools

// Package tools pins the Kubernetes commands built from this module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
etcd_version="$(awk '$1=="go.etcd.io/etcd/server/v3"{print $2; exit}' "$k8s_gomod")"
cd "$src"
go get "k8s.io/kubernetes@${K8S_VERSION}" "go.etcd.io/etcd/server/v3@${etcd_version}" >&2
go mod tidy -e >&2 || true

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/component-base/version/verflag.programName=kubernetes"
for b in "${need[@]}"; do
  case "$b" in
    kube-*|kubectl|kubelet) echo "go build $b" >&2; go build -trimpath -ldflags "$ldflags" -o "$bin/$b.tmp" "k8s.io/kubernetes/cmd/$b" && mv "$bin/$b.tmp" "$bin/$b" ;;
    etcd) echo "go build etcd ${etcd_version}" >&2; go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" ./etcd && mv "$bin/etcd.tmp" "$bin/etcd" ;;
    kwok) echo "go install kwok ${KWOK_VERSION}" >&2; GOBIN="$cache/gobin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" && mv "$cache/gobin/kwok" "$bin/kwok" ;;
  esac
done
echo "control plane built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
