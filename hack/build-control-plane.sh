#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kubectl from Go modules at pinned versions and caches them
# under ~/.cache/rescue/control-plane/<versions>/bin, so that a machine without Docker or a
# registry that ships these binaries can still run a real Kubernetes API for tests and the demo.
#
# Idempotent: when the cache already holds all three binaries it prints their folder and exits.
# The build log is kept beside the binaries (build.log) for when a version fails to build.
set -euo pipefail

K8S_VERSION="${RESCUE_K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${RESCUE_ETCD_VERSION:-v3.6.8}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/rescue/control-plane"
DEST="$CACHE_ROOT/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
BIN="$DEST/bin"

if [[ -x "$BIN/etcd" && -x "$BIN/kube-apiserver" && -x "$BIN/kubectl" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "error: Go is needed to build the control plane" >&2; exit 1; }
mkdir -p "$BIN"
LOG="$DEST/build.log"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0

say() { echo "[control-plane] $*" >&2; }

# --- etcd: its server module's root is package main, so a module that requires it can build it.
build_etcd() {
  local dir="$WORK/etcd"
  mkdir -p "$dir"
  (
    cd "$dir"
    go mod init rescue.local/etcd-build
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  ) >>"$LOG" 2>&1
}

# --- kube-apiserver and kubectl: kubernetes' own go.mod pins its staging modules at v0.0.0 with
# local replaces, so we require it from a module of our own and replace every staging module by
# its published v0.Y.Z, deriving the list from kubernetes' go.mod so any version works.
build_kubernetes() {
  local dir="$WORK/kubernetes" staging_version="v0.${K8S_VERSION#v1.}"
  mkdir -p "$dir"
  (
    cd "$dir"
    go mod init rescue.local/kubernetes-build
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    local replaces
    replaces="$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$gomod")"
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    for m in $replaces; do
      go mod edit -replace="$m=$m@$staging_version"
    done
    # Go version and toolchain follow kubernetes' own go.mod.
    local gover
    gover="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
    go mod edit -go="$gover"
    cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    go mod tidy
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    go build -trimpath -ldflags "$ldflags" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
    go build -trimpath -ldflags "$ldflags" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl
  ) >>"$LOG" 2>&1
}

: >"$LOG"
start=$(date +%s)
say "building etcd $ETCD_VERSION (first time only; log: $LOG)"
build_etcd || { say "etcd $ETCD_VERSION failed to build; see $LOG"; exit 1; }
say "etcd built in $(( $(date +%s) - start )) s; building kube-apiserver and kubectl $K8S_VERSION (about 5 minutes on 2 cores)"
# A heartbeat, so a person watching the first build knows it is alive.
( while sleep 30; do say "still building kube-apiserver and kubectl ($(( $(date +%s) - start )) s so far)"; done ) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null; rm -rf "$WORK"' EXIT
build_kubernetes || { say "Kubernetes $K8S_VERSION failed to build; see $LOG"; exit 1; }
say "control plane built in $(( $(date +%s) - start )) s into $BIN"
echo "$BIN"
