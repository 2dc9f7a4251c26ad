#!/usr/bin/env bash
# Build the real binaries that the end-to-end stack runs: etcd, kube-apiserver, kubectl, Traefik;
# and the obol-stack decode check (tests/obol_decode), which the offline tests run.
#
# Everything is compiled from source fetched through the Go module proxy; no prebuilt binary is
# ever downloaded. Binaries are cached OUTSIDE the repository, keyed by version:
#
#   ${OBOL_E2E_CACHE:-$HOME/.cache/obol-e2e}/bin/<name>-<version>
#
# A binary that is already there is not rebuilt, so running this again is cheap.
#
# Usage:
#   bash tests/e2e/build.sh                  build what is missing, then print NAME=PATH lines
#   bash tests/e2e/build.sh --print          only print NAME=PATH lines; exit 3 if one is missing
#   bash tests/e2e/build.sh --crds           only export the upstream CRDs (module downloads, no
#                                            compile), print paths
#   bash tests/e2e/build.sh --decode-check   only build the obol-stack decode check (a small Go
#                                            program on k8s.io/apimachinery), print paths
#   bash tests/e2e/build.sh --update-modules regenerate gobuild/*/go.mod and go.sum from the pins
#                                            below (needs the checksum database through the proxy)
#   bash tests/e2e/build.sh --prune          delete the Go module and build caches (several GB)
#                                            under the cache dir; keeps the binaries
#
# stdout carries only the NAME=PATH lines (machine-readable); progress goes to stderr.
set -euo pipefail

# ---- pinned versions: the only place to change them -------------------------------------------
ETCD_VERSION=v3.6.16     # go.etcd.io/etcd/server/v3
KUBE_VERSION=v1.37.2     # k8s.io/kubernetes (staging modules k8s.io/* at v0.37.2)
TRAEFIK_VERSION=v3.6.25  # github.com/traefik/traefik/v3 (v3.7 needs an unpublished nested module)
# go.sum-style hash of the Traefik module zip, checked after download (the zip is built as the
# main module, so no go.sum of ours covers it).
TRAEFIK_SUM='h1:M1ME6Mpd83amqd3yWCciyw709/ZbJT8uZQblolnwr7I='
# Gateway API CRDs (standard channel) that the hook's children are written for and tested against.
GATEWAY_API_VERSION=v1.5.1  # sigs.k8s.io/gateway-api
# go.sum line of that module zip (the same hash sum.golang.org records for it).
GATEWAY_API_SUM='h1:RqVRIlkhLhUO8wOHKTLnTJA6o/1un4po4/6M1nRzdd0='
# -------------------------------------------------------------------------------------------------

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${OBOL_E2E_CACHE:-$HOME/.cache/obol-e2e}"
BIN="$CACHE/bin"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

ETCD_BIN="$BIN/etcd-$ETCD_VERSION"
APISERVER_BIN="$BIN/kube-apiserver-$KUBE_VERSION"
KUBECTL_BIN="$BIN/kubectl-$KUBE_VERSION"
TRAEFIK_BIN="$BIN/traefik-$TRAEFIK_VERSION"
# The decode check is our own source: its binary is keyed by a hash of that source.
DECODE_SRC="$HERE/../obol_decode"
DECODE_HASH="$(cat "$DECODE_SRC"/go.mod "$DECODE_SRC"/go.sum "$DECODE_SRC"/*.go | sha256sum | cut -c1-12)"
DECODE_BIN="$BIN/oboldecode-$DECODE_HASH"
# CRDs this Traefik build watches (see export_traefik_crds), and the Gateway API CRDs of the
# release the hook targets (see export_gateway_api_crds).
TRAEFIK_CRDS="$CACHE/crds/traefik-$TRAEFIK_VERSION"
GATEWAY_API_CRDS="$CACHE/crds/gateway-api-$GATEWAY_API_VERSION"
GATEWAY_API_FILES=(httproutes gateways gatewayclasses referencegrants)

print_paths() {
  echo "ETCD=$ETCD_BIN"
  echo "KUBE_APISERVER=$APISERVER_BIN"
  echo "KUBECTL=$KUBECTL_BIN"
  echo "TRAEFIK=$TRAEFIK_BIN"
  echo "OBOL_DECODE=$DECODE_BIN"
  echo "TRAEFIK_CRDS=$TRAEFIK_CRDS"
  echo "GATEWAY_API_CRDS=$GATEWAY_API_CRDS"
  echo "ETCD_VERSION=$ETCD_VERSION"
  echo "KUBE_VERSION=$KUBE_VERSION"
  echo "TRAEFIK_VERSION=$TRAEFIK_VERSION"
  echo "GATEWAY_API_VERSION=$GATEWAY_API_VERSION"
}

crds_present() {
  [[ -f $TRAEFIK_CRDS/.complete && -f $GATEWAY_API_CRDS/.complete ]]
}

all_present() {
  [[ -x $ETCD_BIN && -x $APISERVER_BIN && -x $KUBECTL_BIN && -x $TRAEFIK_BIN && -x $DECODE_BIN ]] &&
    crds_present
}

if [[ ${1:-} == --print ]]; then
  print_paths
  all_present || exit 3
  exit 0
fi

log() { printf '[build.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ -x $GO ]] || die "no Go toolchain found (set GO=/path/to/go)"

# A dedicated module and build cache, so that a CI machine can cache one directory and so that
# nothing is written into the repository or the user's GOPATH.
export GOMODCACHE="$CACHE/gomod"
export GOCACHE="$CACHE/gocache"
export GOTOOLCHAIN=local          # never download another Go toolchain
export CGO_ENABLED=0
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export GOWORK=off
mkdir -p "$BIN" "$GOMODCACHE" "$GOCACHE"
# Work from a directory that is not inside any Go module, so that `go mod download m@v` never
# touches a go.mod/go.sum of wherever the script was started from.
cd "$CACHE"

log "go: $("$GO" version); cache: $CACHE"

major_minor() { # v1.37.2 -> "1 37"
  local v=${1#v}
  echo "${v%%.*} $(echo "$v" | cut -d. -f2)"
}

# A field of a published module version's .info (tag time, origin commit), read via the proxy.
# Run inside a wrapper module whose go.sum already covers <module@version>.
mod_info() { # <dir> <module@version> <python expression over d = the .info JSON>
  local info
  info="$(cd "$1" && "$GO" mod download -json "$2" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Info"])')"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
    "$info" "$3"
}

# ---- --update-modules: regenerate the wrapper go.mod/go.sum files ------------------------------
update_modules() {
  local kube_minor staging_ver
  read -r _ kube_minor < <(major_minor "$KUBE_VERSION")
  staging_ver="v0.$kube_minor.${KUBE_VERSION##*.}"

  log "etcd wrapper -> go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  (
    cd "$HERE/gobuild/etcd"
    cat >go.mod <<EOF
// Wrapper module: builds the etcd server binary from the published
// go.etcd.io/etcd/server/v3 module. \`go install ...@version\` cannot do it,
// because etcd's own go.mod has replace directives. Versions are pinned in
// tests/e2e/build.sh; regenerate with \`bash tests/e2e/build.sh --update-modules\`.
module obol.invalid/e2e/etcd

go 1.24

tool go.etcd.io/etcd/server/v3
EOF
    rm -f go.sum
    GOFLAGS=-mod=mod "$GO" get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    GOFLAGS=-mod=mod "$GO" mod tidy
  )

  log "kube wrapper -> k8s.io/kubernetes@$KUBE_VERSION, staging modules at $staging_ver"
  local kmod
  kmod="$(GOFLAGS=-mod=mod "$GO" mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  (
    cd "$HERE/gobuild/kube"
    {
      echo '// Wrapper module: builds kube-apiserver and kubectl from the published'
      echo '// k8s.io/kubernetes module. Its staging modules are nested modules (not in the'
      echo '// module zip), so each one is replaced here by its published v0.Y.Z release.'
      echo '// Generated by `bash tests/e2e/build.sh --update-modules`; do not edit by hand.'
      echo 'module obol.invalid/e2e/kube'
      echo
      grep -m1 '^go ' "$kmod"
      echo
      # Same GODEBUG defaults as the upstream build.
      grep '^godebug' "$kmod" || true
      echo
      echo 'tool ('
      echo '	k8s.io/kubernetes/cmd/kube-apiserver'
      echo '	k8s.io/kubernetes/cmd/kubectl'
      echo ')'
      echo
      echo "require k8s.io/kubernetes $KUBE_VERSION"
      echo
      echo 'replace ('
      # Every staging module the release requires at v0.0.0 (replaced upstream by ./staging/...).
      sed -n '/^require/,/^)/p' "$kmod" |
        awk -v v="$staging_ver" '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {printf "\t%s => %s %s\n", $1, $1, v}'
      echo ')'
    } >go.mod
    rm -f go.sum
    GOFLAGS=-mod=mod "$GO" mod tidy
  )
  log "done; review and commit tests/e2e/gobuild"
}

if [[ ${1:-} == --update-modules ]]; then
  update_modules
  exit 0
elif [[ ${1:-} == --prune ]]; then
  log "pruning $GOMODCACHE and $GOCACHE (binaries in $BIN stay)"
  "$GO" clean -modcache
  "$GO" clean -cache
  rm -rf "$GOMODCACHE" "$GOCACHE"
  exit 0
elif [[ $# -gt 0 && $1 != --crds && $1 != --decode-check ]]; then
  die "unknown argument: $1 (see the header of this script)"
fi

# The committed wrapper modules must match the pins above.
grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$HERE/gobuild/etcd/go.mod" ||
  die "gobuild/etcd/go.mod does not pin etcd $ETCD_VERSION; run: bash tests/e2e/build.sh --update-modules"
grep -Eq "^(require )?[[:space:]]*k8s\.io/kubernetes $KUBE_VERSION( |\$)" "$HERE/gobuild/kube/go.mod" ||
  die "gobuild/kube/go.mod does not pin kubernetes $KUBE_VERSION; run: bash tests/e2e/build.sh --update-modules"
read -r _ KUBE_MINOR < <(major_minor "$KUBE_VERSION")
APIMACHINERY_VERSION="v0.$KUBE_MINOR.${KUBE_VERSION##*.}"
grep -q "^require k8s.io/apimachinery $APIMACHINERY_VERSION\$" "$DECODE_SRC/go.mod" ||
  die "tests/obol_decode/go.mod does not require k8s.io/apimachinery $APIMACHINERY_VERSION (the kube pin)"

TMP_DIRS=()
cleanup() { local d; for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT

STEP_START=0
step_begin() { STEP_START=$SECONDS; log "BEGIN $*"; }
step_end() { log "END   $* ($((SECONDS - STEP_START)) s)"; }

TOTAL_START=$SECONDS

# ---- etcd --------------------------------------------------------------------------------------
build_etcd() {
  step_begin "etcd $ETCD_VERSION"
  local tmp="$ETCD_BIN.tmp.$$"
  TMP_DIRS+=("$tmp")
  (cd "$HERE/gobuild/etcd" && "$GO" build -ldflags "-s -w" -o "$tmp" go.etcd.io/etcd/server/v3)
  "$tmp" --version >&2
  mv -f "$tmp" "$ETCD_BIN"
  step_end "etcd"
}

# ---- kube-apiserver + kubectl ------------------------------------------------------------------
build_kube() {
  step_begin "kube-apiserver + kubectl $KUBE_VERSION"
  local major minor commit date ld pkg tmpdir
  read -r major minor < <(major_minor "$KUBE_VERSION")
  local kube="$HERE/gobuild/kube" mod="k8s.io/kubernetes@$KUBE_VERSION"
  commit="$(mod_info "$kube" "$mod" '(d.get("Origin") or {}).get("Hash", "")')"
  date="$(mod_info "$kube" "$mod" 'd["Time"]')"
  ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  tmpdir="$(mktemp -d "$BIN/.kube.XXXXXX")"
  TMP_DIRS+=("$tmpdir")
  (cd "$HERE/gobuild/kube" && "$GO" build -ldflags "$ld" -o "$tmpdir/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl)
  "$tmpdir/kube-apiserver" --version >&2
  "$tmpdir/kubectl" version --client >&2
  mv -f "$tmpdir/kube-apiserver" "$APISERVER_BIN"
  mv -f "$tmpdir/kubectl" "$KUBECTL_BIN"
  step_end "kube"
}

# ---- Traefik -----------------------------------------------------------------------------------
TRAEFIK_INFO=""
traefik_download() { # sets TRAEFIK_INFO to the `go mod download -json` output, checks the hash
  local sum
  # The module zip is verified against TRAEFIK_SUM below, so the checksum database is not needed.
  TRAEFIK_INFO="$(GONOSUMDB=github.com/traefik/traefik GOFLAGS=-mod=mod \
    "$GO" mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION")"
  sum="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Sum"])' "$TRAEFIK_INFO")"
  [[ $sum == "$TRAEFIK_SUM" ]] || die "traefik module hash $sum != pinned $TRAEFIK_SUM"
}

build_traefik() {
  step_begin "traefik $TRAEFIK_VERSION"
  local info dir date src
  traefik_download
  info="$TRAEFIK_INFO"
  dir="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Dir"])' "$info")"
  date="$(python3 -c \
    'import json,sys; print(json.load(open(json.loads(sys.argv[1])["Info"]))["Time"])' \
    "$info")"
  # The module cache is read-only; build a writable copy as the main module, so that Traefik's
  # own replace/exclude directives and its go.sum apply.
  src="$(mktemp -d "${TMPDIR:-/tmp}/obol-e2e-traefik.XXXXXX")"
  TMP_DIRS+=("$src")
  cp -r "$dir/." "$src/"
  chmod -R u+w "$src"
  local tmp="$TRAEFIK_BIN.tmp.$$"
  TMP_DIRS+=("$tmp")
  local v=github.com/traefik/traefik/v3/pkg/version
  (cd "$src" && "$GO" build -ldflags "-s -w -X $v.Version=$TRAEFIK_VERSION -X $v.BuildDate=$date" \
    -o "$tmp" ./cmd/traefik)
  "$tmp" version >&2
  mv -f "$tmp" "$TRAEFIK_BIN"
  step_end "traefik"
}

# ---- upstream CRDs -----------------------------------------------------------------------------
# Traefik's informers list+watch every kind they know; a kind without a CRD never syncs and the
# provider never loads. Besides the Gateway API kinds the hook renders (exported below at the
# release the hook targets), Traefik v3.6 watches GRPCRoute and BackendTLSPolicy (gateway
# provider) and the traefik.io kinds (CRD provider, Middleware among them). Copy the upstream
# files that match this build: Traefik's own CRDs from its module zip, and those two Gateway API
# CRDs from the gateway-api version Traefik requires.
export_traefik_crds() {
  step_begin "export CRDs watched by traefik $TRAEFIK_VERSION"
  local dir gw tmp f
  traefik_download
  dir="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Dir"])' "$TRAEFIK_INFO")"
  # Resolved inside Traefik's module, so its go.sum verifies the download.
  gw="$(cd "$dir" && "$GO" mod download -json sigs.k8s.io/gateway-api |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["Dir"])')"
  tmp="$(mktemp -d "$CACHE/crds/.tmp.XXXXXX")"
  TMP_DIRS+=("$tmp")
  cp "$dir"/docs/content/reference/dynamic-configuration/traefik.io_*.yaml "$tmp/"
  for f in grpcroutes backendtlspolicies; do
    cp "$gw/config/crd/standard/gateway.networking.k8s.io_$f.yaml" "$tmp/"
  done
  chmod -R u+w "$tmp"
  echo "traefik $TRAEFIK_VERSION; $(basename "$gw")" >"$tmp/.complete"
  rm -rf "$TRAEFIK_CRDS"
  mv "$tmp" "$TRAEFIK_CRDS"
  step_end "CRDs -> $TRAEFIK_CRDS"
}

# The standard-channel HTTPRoute, Gateway, GatewayClass and ReferenceGrant CRDs of the Gateway
# API release the hook's children are written for: the stack installs them and the offline tests
# validate children against them.
export_gateway_api_crds() {
  step_begin "export Gateway API $GATEWAY_API_VERSION CRDs"
  local info sum dir tmp f
  # The zip is verified against GATEWAY_API_SUM below, so the checksum database is not needed.
  info="$(GONOSUMDB=sigs.k8s.io/gateway-api GOFLAGS=-mod=mod \
    "$GO" mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION")"
  sum="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Sum"])' "$info")"
  [[ $sum == "$GATEWAY_API_SUM" ]] ||
    die "gateway-api module hash $sum != pinned $GATEWAY_API_SUM"
  dir="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["Dir"])' "$info")"
  tmp="$(mktemp -d "$CACHE/crds/.tmp.XXXXXX")"
  TMP_DIRS+=("$tmp")
  for f in "${GATEWAY_API_FILES[@]}"; do
    cp "$dir/config/crd/standard/gateway.networking.k8s.io_$f.yaml" "$tmp/"
  done
  chmod -R u+w "$tmp"
  echo "sigs.k8s.io/gateway-api $GATEWAY_API_VERSION $sum; config/crd/standard" >"$tmp/.complete"
  rm -rf "$GATEWAY_API_CRDS"
  mv "$tmp" "$GATEWAY_API_CRDS"
  step_end "CRDs -> $GATEWAY_API_CRDS"
}

export_crds() {
  mkdir -p "$CACHE/crds"
  if [[ -f $TRAEFIK_CRDS/.complete ]]; then
    log "skip Traefik CRD export: $TRAEFIK_CRDS exists"
  else
    export_traefik_crds
  fi
  if [[ -f $GATEWAY_API_CRDS/.complete ]]; then
    log "skip Gateway API CRD export: $GATEWAY_API_CRDS exists"
  else
    export_gateway_api_crds
  fi
}

# ---- the obol-stack decode check ---------------------------------------------------------------
build_decode_check() {
  step_begin "oboldecode ($DECODE_HASH, k8s.io/apimachinery $APIMACHINERY_VERSION)"
  local tmp="$DECODE_BIN.tmp.$$"
  TMP_DIRS+=("$tmp")
  (cd "$DECODE_SRC" && "$GO" build -ldflags "-s -w" -o "$tmp" .)
  mv -f "$tmp" "$DECODE_BIN"
  step_end "oboldecode"
}

ensure_decode_check() {
  if [[ -x $DECODE_BIN ]]; then log "skip oboldecode: $DECODE_BIN exists"; else build_decode_check; fi
}

if [[ ${1:-} == --crds ]]; then
  export_crds
  print_paths
  exit 0
elif [[ ${1:-} == --decode-check ]]; then
  ensure_decode_check
  print_paths
  exit 0
fi

if [[ -x $ETCD_BIN ]]; then log "skip etcd: $ETCD_BIN exists"; else build_etcd; fi
if [[ -x $APISERVER_BIN && -x $KUBECTL_BIN ]]; then
  log "skip kube: $APISERVER_BIN and $KUBECTL_BIN exist"
else
  build_kube
fi
if [[ -x $TRAEFIK_BIN ]]; then log "skip traefik: $TRAEFIK_BIN exists"; else build_traefik; fi
export_crds
ensure_decode_check

log "all binaries ready in $BIN (total $((SECONDS - TOTAL_START)) s)"
print_paths
