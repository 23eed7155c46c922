#!/usr/bin/env bash
# Builds the local control plane from the Go module proxy, at pinned versions:
#   kube-apiserver, kube-controller-manager, kube-scheduler and a kubectl of the same version (k8s.io/kubernetes
#   through a wrapper module),
#   etcd (a wrapper main around etcdmain), kwok, and CoreDNS with a small plugin set.
# Binaries are cached outside the repository, keyed by version, and only built when missing:
#   ${TRO_CACHE_DIR:-$HOME/.cache/telemetry-rollout}/controlplane/<component>-<version>/
# If KUBEBUILDER_ASSETS names a directory holding a binary already, that one is used instead.
# Prints the directory holding all binaries (one symlink per component) as the last line on stdout.
#
# Usage: e2e/controlplane/build.sh [--print-dir]
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"

CACHE="${TRO_CACHE_DIR:-$HOME/.cache/telemetry-rollout}/controlplane"
BIN="$CACHE/bin-k${KUBERNETES_VERSION}-e${ETCD_VERSION}-w${KWOK_VERSION}-d${COREDNS_VERSION}"
mkdir -p "$CACHE" "$BIN"

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -trimpath -tags=notest"
export GOTOOLCHAIN=local

log() { printf '[controlplane build %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Run a long build showing a heartbeat, so the person (or CI log) sees progress.
with_progress() {
  local what="$1"; shift
  local start=$SECONDS
  ( while sleep 30; do log "$what: still building ($((SECONDS - start))s)"; done ) &
  local ticker=$!
  local rc=0
  "$@" || rc=$?
  kill "$ticker" 2>/dev/null || true
  wait "$ticker" 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then log "$what: FAILED after $((SECONDS - start))s"; return "$rc"; fi
  log "$what: done in $((SECONDS - start))s"
}

# Use a binary from KUBEBUILDER_ASSETS when present; returns 0 if linked.
use_asset() {
  local name="$1"
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
    ln -sf "$KUBEBUILDER_ASSETS/$name" "$BIN/$name"
    log "$name: using $KUBEBUILDER_ASSETS/$name"
    return 0
  fi
  return 1
}

build_kubernetes() {
  local out="$CACHE/kubernetes-$KUBERNETES_VERSION"
  local need=0
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    use_asset "$b" || { [ -x "$out/$b" ] || need=1; }
  done
  if [ "$need" = 1 ]; then
    local work; work="$(mktemp -d "$CACHE/build-kubernetes.XXXXXX")"
    local staging="v0.${KUBERNETES_VERSION#v1.}"
    log "kubernetes $KUBERNETES_VERSION: preparing wrapper module (staging modules at $staging)"
    # The list of staging modules is read from k8s.io/kubernetes's own go.mod (its replace ./staging lines),
    # so a release that adds one (1.36 added cri-streaming and streaming) needs no change here.
    local gomod; gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    {
      echo "module tro.local/kubernetes-wrapper"
      echo
      echo "go 1.26.0"
      echo
      echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
      echo
      echo "replace ("
      grep -E '^\s+k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } > "$work/go.mod"
    cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    (cd "$work" && with_progress "kubernetes: go mod tidy" go mod tidy -e >/dev/null 2>"$work/tidy.log" || { cat "$work/tidy.log" >&2; exit 1; })
    local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    local minor; minor="$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"
    local ld=""
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=$date -X $p.gitCommit=0000000000000000000000000000000000000000"
    done
    mkdir -p "$work/out"
    (cd "$work" && with_progress "kubernetes $KUBERNETES_VERSION: go build (cold: many minutes)" \
      go build -tags=tools,notest -ldflags "-s -w $ld" -o "$work/out/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kubectl)
    rm -rf "$out"; mv "$work/out" "$out"; rm -rf "$work"
  fi
  for b in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [ -L "$BIN/$b" ] && [ "$(readlink "$BIN/$b")" != "$out/$b" ] && continue
    ln -sf "$out/$b" "$BIN/$b"
  done
}

build_etcd() {
  use_asset etcd && return 0
  local out="$CACHE/etcd-$ETCD_VERSION"
  if [ ! -x "$out/etcd" ]; then
    local work; work="$(mktemp -d "$CACHE/build-etcd.XXXXXX")"
    # etcd's own main only calls etcdmain.Main; go install refuses the module for its replace directives.
    cat > "$work/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    printf 'module tro.local/etcd-wrapper\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$work/go.mod"
    (cd "$work" && with_progress "etcd: go mod tidy" go mod tidy >/dev/null)
    mkdir -p "$work/out"
    (cd "$work" && with_progress "etcd $ETCD_VERSION: go build" go build -ldflags "-s -w" -o "$work/out/etcd" .)
    rm -rf "$out"; mv "$work/out" "$out"; rm -rf "$work"
  fi
  ln -sf "$out/etcd" "$BIN/etcd"
}

build_kwok() {
  local out="$CACHE/kwok-$KWOK_VERSION"
  if ! use_asset kwok; then
    if [ ! -x "$out/kwok" ]; then
      mkdir -p "$out.tmp"
      with_progress "kwok $KWOK_VERSION: go install" env GOBIN="$out.tmp" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
      rm -rf "$out"; mv "$out.tmp" "$out"
    fi
    ln -sf "$out/kwok" "$BIN/kwok"
  fi
  # kwok needs stage configs; the module ships them. Copy them next to the binary once.
  local stages="$CACHE/kwok-stages-$KWOK_VERSION"
  if [ ! -d "$stages" ]; then
    local moddir; moddir="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
    mkdir -p "$stages.tmp"
    cp -r "$moddir/kustomize/stage/." "$stages.tmp/"
    chmod -R u+w "$stages.tmp"
    rm -rf "$stages"; mv "$stages.tmp" "$stages"
  fi
  ln -sfn "$stages" "$BIN/kwok-stages"
}

# The CoreDNS plugin set is part of the cache key: changing the list below must change COREDNS_FLAVOR.
COREDNS_FLAVOR="tro2"
build_coredns() {
  use_asset coredns && return 0
  local out="$CACHE/coredns-$COREDNS_VERSION-$COREDNS_FLAVOR"
  if [ ! -x "$out/coredns" ]; then
    local work; work="$(mktemp -d "$CACHE/build-coredns.XXXXXX")"
    # A small main: only the plugins we use, in CoreDNS's directive order, so the build skips every cloud SDK.
    # bind keeps every listener on 127.0.0.1; forward/loop/whoami are there for people's own Corefiles.
    cat > "$work/main.go" <<'GO'
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"

	"github.com/coredns/coredns/coremain"
)

func init() {
	dnsserver.Directives = []string{
		"reload", "bind", "ready", "health", "prometheus", "errors", "log", "cache", "loop", "kubernetes", "forward", "whoami",
	}
}

func main() { coremain.Run() }
GO
    printf 'module tro.local/coredns-wrapper\n\ngo 1.26.0\n\nrequire github.com/coredns/coredns %s\n' "$COREDNS_VERSION" > "$work/go.mod"
    (cd "$work" && with_progress "coredns: go mod tidy" go mod tidy >/dev/null)
    mkdir -p "$work/out"
    (cd "$work" && with_progress "coredns $COREDNS_VERSION: go build" go build -ldflags "-s -w" -o "$work/out/coredns" .)
    rm -rf "$out"; mv "$work/out" "$out"; rm -rf "$work"
  fi
  ln -sf "$out/coredns" "$BIN/coredns"
}

start=$SECONDS
only="${ONLY:-etcd kwok coredns kubernetes}"
for c in $only; do
  case "$c" in
    etcd) build_etcd ;;
    kwok) build_kwok ;;
    coredns) build_coredns ;;
    kubernetes) build_kubernetes ;;
    *) log "unknown component $c"; exit 2 ;;
  esac
done
log "all binaries ready in $BIN ($((SECONDS - start))s)"
echo "$BIN"
