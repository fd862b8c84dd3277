#!/usr/bin/env bash
# Builds Argo Rollouts' controller from its Go module (no release downloads reach these
# machines) and caches it by version. Prints the bin directory; its CRDs are the module's
# manifests/crds (testbed/bench/peer.py installs them with the control plane). Builds only what is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}/argo-rollouts/${ARGO_ROLLOUTS_VERSION}"
bin="$cache/bin"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
if [ -x "$bin/rollouts-controller" ]; then echo "$bin"; exit 0; fi
# One build at a time (the benchmark and a test may ask at once); the second reuses it.
exec 9>"$cache/.build.lock"
flock 9
if [ -x "$bin/rollouts-controller" ]; then echo "$bin"; exit 0; fi
echo "building rollouts-controller ${ARGO_ROLLOUTS_VERSION} into $bin" >&2
start=$(date +%s)

# The wrapper module: Argo Rollouts' own go.mod pins k8s.io/* and two forks with replace
# lines, which a requiring module ignores, so they are copied here from that go.mod.
module=github.com/argoproj/argo-rollouts
gomod="$(go mod download -json "${module}@${ARGO_ROLLOUTS_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
go_directive="$(awk '$1=="go"{print $2; exit}' "$gomod")"
src="$cache/src"
rm -rf "$src"
mkdir -p "$src"
{
  echo "module modeldeploy.dev/argorollouts"
  echo
  echo "go ${go_directive}"
  echo
  echo "require ${module} ${ARGO_ROLLOUTS_VERSION}"
  echo
  echo "replace ("
  # Every replace by a module version (a local path would not exist here).
  go mod edit -json "$gomod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    if new.get("Version"):
        print("\t" + " ".join(filter(None, [old["Path"], old.get("Version"), "=>", new["Path"], new["Version"]])))
'
  echo ")"
} > "$src/go.mod"
cat > "$src/tools.go" <<'GO'
//go:build tools

// Package tools pins the controller built from this module.
package tools

import _ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
GO
cd "$src"
go mod tidy >&2
go build -trimpath -ldflags "-s -w -X ${module}/utils/version.version=${ARGO_ROLLOUTS_VERSION#v}" \
  -o "$bin/rollouts-controller.tmp" "${module}/cmd/rollouts-controller"
mv "$bin/rollouts-controller.tmp" "$bin/rollouts-controller"
echo "rollouts-controller built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
