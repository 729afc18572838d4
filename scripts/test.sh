#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this):
# installs what the tests need, checks formatting and lints, runs every
# test (unit, integration over loopback HTTP, the real binary, promtool,
# Prometheus + Alertmanager end to end), then the container smoke test and
# the Debian package check.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
# CI builds once from a fresh clone: incremental caches would only add some
# 5 GB of disk (CI has run out of it) for rebuilds that never come.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
scripts/install-deps.sh
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# The shipped (default-feature) binary carries no simulator or verifier.
scripts/check-no-sim.sh
cargo test --locked
# Container smoke test with the binary the tests just built (a release build
# would add ~6 minutes on 2 cores; the runtime image is the same either way).
scripts/buildah-smoke.sh target/debug/cdn-task-exporter
# Debian package of the same debug binary: contents, conffiles, systemd unit
# (systemd-analyze verify and security), packaged --version and check-config.
scripts/check-deb.sh
echo "scripts/test.sh: all passed in $((SECONDS - t0))s"
