#!/usr/bin/env bash
# Installs, idempotently, every program the tests and the demo run for real: Debian's
# Alertmanager and Prometheus, git, openssl, OpenSSH's server (a real SSH git remote for the tests),
# and the control plane built from Go modules
# (skipped when KUBEBUILDER_ASSETS already names a folder with etcd, kube-apiserver, kubectl).
set -euo pipefail

need=()
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v amtool >/dev/null || need+=(prometheus-alertmanager)
command -v prometheus >/dev/null || need+=(prometheus)
command -v git >/dev/null || need+=(git)
command -v openssl >/dev/null || need+=(openssl)
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
if ((${#need[@]})); then
  echo "[tools] installing Debian packages: ${need[*]}" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

assets="${KUBEBUILDER_ASSETS:-}"
if [[ -n "$assets" && -x "$assets/etcd" && -x "$assets/kube-apiserver" && -x "$assets/kubectl" ]]; then
  echo "[tools] using the control plane in KUBEBUILDER_ASSETS=$assets" >&2
else
  bash "$(dirname "$0")/build-control-plane.sh" >/dev/null
fi
