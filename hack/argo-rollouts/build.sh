#!/usr/bin/env bash
# Builds Argo Rollouts' controller from its Go module (no release downloads reach these
# machines) and caches it by version and by this script. Prints the bin directory; its CRDs
# are the module's manifests/crds (testbed/bench/peer.py installs them with the control
# plane). Builds only what is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
key="$(cat "$here/versions.env" "$here/build.sh" | sha256sum | cut -c1-12)"
cache="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}/argo-rollouts/${ARGO_ROLLOUTS_VERSION}-${key}"
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

module=github.com/argoproj/argo-rollouts
info="$(go mod download -json "${module}@${ARGO_ROLLOUTS_VERSION}")"
module_dir="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])' <<<"$info")"
gomod="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])' <<<"$info")"
go_directive="$(awk '$1=="go"{print $2; exit}' "$gomod")"
src="$cache/src"
rm -rf "$src"
mkdir -p "$src"

# The module's source, with one line changed: its metrics and health servers listen on
# a constant "0.0.0.0:%d" (no flag sets the address), and nothing here may listen beyond
# loopback. The build fails if the line moved.
cp -r "$module_dir" "$src/argo-rollouts"
chmod -R u+w "$src/argo-rollouts"
listen="$src/argo-rollouts/controller/controller.go"
grep -q 'listenAddr *= "0.0.0.0:%d"' "$listen" || { echo "$listen: listenAddr not found" >&2; exit 1; }
sed -i 's/listenAddr\( *\)= "0.0.0.0:%d"/listenAddr\1= "127.0.0.1:%d"/' "$listen"

# The wrapper module: Argo Rollouts' own go.mod pins k8s.io/* and two forks with replace
# lines, which a requiring module ignores, so they are copied here from that go.mod.
{
  echo "module modeldeploy.dev/argorollouts"
  echo
  echo "go ${go_directive}"
  echo
  echo "require ${module} ${ARGO_ROLLOUTS_VERSION}"
  echo
  echo "replace ("
  echo "	${module} => ./argo-rollouts"
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
