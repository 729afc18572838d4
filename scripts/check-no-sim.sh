#!/usr/bin/env bash
# The default build (no cargo features) ships no simulated vendor: no code
# from src/sim (server-side signature verifiers), no `testing` vendor, and a
# `demo` subcommand that refuses with exit 2. Run before `cargo test`, which
# rebuilds the same binary path with the `sim` feature.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --bin cdn-task-exporter
bin=$(mktemp -d)/cdn-task-exporter
cp target/debug/cdn-task-exporter "$bin"
fail=0
n=$(nm -C "$bin" | grep -cE 'cdn_task_exporter::(sim|demo)::|vendors::testing::' || true)
if [ "$n" -ne 0 ]; then
  echo "check-no-sim: default build has $n simulator symbols:"; nm -C "$bin" | grep -E 'cdn_task_exporter::(sim|demo)::|vendors::testing::' | head
  fail=1
fi
set +e
out=$("$bin" demo 2>&1); rc=$?
set -e
if [ "$rc" -ne 2 ] || ! grep -q -- "--features sim" <<<"$out"; then
  echo "check-no-sim: 'demo' in a default build: exit $rc, said: $out"; fail=1
fi
cfg=$(mktemp)
printf 'accounts:\n  - name: t\n    vendor: testing\n    credentials: { id: a, secret: b }\n' >"$cfg"
set +e
out=$("$bin" --config.file "$cfg" check-config 2>&1); rc=$?
set -e
if [ "$rc" -ne 2 ] || ! grep -q 'unknown vendor' <<<"$out"; then
  echo "check-no-sim: a default build accepted vendor 'testing' (exit $rc): $out"; fail=1
fi
rm -f "$cfg"
[ "$fail" -eq 0 ] && echo "check-no-sim: default build has no simulators; demo refuses; vendor 'testing' rejected"
exit "$fail"
