#!/usr/bin/env bash
# Builds the Debian package with cargo-deb ([package.metadata.deb] in Cargo.toml).
#
#   scripts/package-deb.sh                 # release build, then target/debian/cdn-task-exporter_*.deb
#   scripts/package-deb.sh --dev OUTDIR    # package the debug binary already in target/debug
#                                          # (the test suite: no second build), fast compression
#
# Installs cargo-deb with `cargo install --debug` when it is missing: about one
# CPU-minute once, instead of several for a release build of it; packaging
# itself takes a few seconds either way.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version >/dev/null 2>&1; then
  echo "package-deb: installing cargo-deb $CARGO_DEB_VERSION (cargo install, once)"
  cargo install cargo-deb --locked --debug --version "$CARGO_DEB_VERSION"
fi
if [ "${1:-}" = "--dev" ]; then
  out="${2:?usage: scripts/package-deb.sh --dev OUTDIR}"
  # The tests' binary (built with the dev-dependency's features); build one
  # only if there is none, so a test run's binary is never replaced.
  [ -x target/debug/cdn-task-exporter ] || cargo build --locked --bin cdn-task-exporter
  # cargo-deb maps target/release/ in the assets to the profile's directory.
  cargo deb --locked --profile dev --no-build --fast --quiet --output "$out"
else
  cargo deb --locked
fi
