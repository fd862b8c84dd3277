#!/usr/bin/env bash
# Builds the real consumers of the project's integration files from Go modules (no
# release downloads reach these machines) and caches them by version and source:
#   helm     - lints, renders and installs charts/modeldeploy
#   kstatus  - sigs.k8s.io/cli-utils' status computation, what Flux's health checks use
#   luarun   - gopher-lua set up as Argo CD's resource customisation VM
# Prints the bin directory. Builds only what is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
key="$(cat "$here/versions.env" "$here"/*/main.go | sha256sum | cut -c1-12)"
cache="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}/tools/$key"
bin="$cache/bin"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
if [ -x "$bin/helm" ] && [ -x "$bin/kstatus" ] && [ -x "$bin/luarun" ]; then echo "$bin"; exit 0; fi
start=$(date +%s)

if [ ! -x "$bin/helm" ]; then
  echo "go install helm ${HELM_VERSION}" >&2
  GOBIN="$cache/gobin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
  mv "$cache/gobin/helm" "$bin/helm"
fi

# kstatus and luarun: small main packages in one module, its requirements pinned here.
src="$cache/src"
rm -rf "$src"
mkdir -p "$src"
cp -r "$here/kstatus" "$here/luarun" "$src/"
cat > "$src/go.mod" <<MOD
module modeldeploy.dev/tools

go $(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+).*/\1/')

require (
	sigs.k8s.io/cli-utils ${CLI_UTILS_VERSION}
	github.com/yuin/gopher-lua ${GOPHER_LUA_VERSION}
	layeh.com/gopher-json ${GOPHER_JSON_VERSION}
)
MOD
(cd "$src" && go mod tidy >&2)
for tool in kstatus luarun; do
  echo "go build $tool" >&2
  (cd "$src" && go build -trimpath -ldflags "-s -w" -o "$bin/$tool.tmp" "./$tool") && mv "$bin/$tool.tmp" "$bin/$tool"
done
echo "built helm, kstatus and luarun in $(( $(date +%s) - start ))s" >&2
echo "$bin"
