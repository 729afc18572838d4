#!/usr/bin/env bash
# Builds the Debian package from the debug binary the tests built and checks
# it: metadata and file list, conffiles and modes, the systemd unit
# (systemd-analyze verify, and its sandboxing score), then runs the packaged
# binary's --version and check-config on the packaged config with exactly the
# variables the packaged environment file names. Part of scripts/test.sh.
#
#   scripts/check-deb.sh            # build with scripts/package-deb.sh --dev, then check
#   scripts/check-deb.sh FILE.deb   # check an existing package (e.g. a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-deb: FAIL: $*" >&2; exit 1; }
step() { echo "--- check-deb: $*"; }

if [ $# -ge 1 ]; then
  deb="$1"
else
  step "build (cargo-deb, debug binary)"
  scripts/package-deb.sh --dev "$tmp/out"
  deb="$(ls "$tmp"/out/cdn-task-exporter_*.deb)"
fi
echo "package: $deb ($(du -h "$deb" | cut -f1))"

step "dpkg-deb --info"
dpkg-deb --info "$deb" | tee "$tmp/info"
for field in "Package: cdn-task-exporter" "Version: " "Architecture: " "Depends: " "Section: net" "Description: "; do
  grep -q "^ $field" "$tmp/info" || fail "control lacks '$field'"
done
dpkg-deb --field "$deb" Depends | grep -q libc6 || fail "Depends lacks libc6"
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$tmp" ./conffiles
sort "$tmp/conffiles" >"$tmp/conffiles.sorted"
printf '%s\n' /etc/cdn-task-exporter/cdn-task-exporter.yml /etc/default/cdn-task-exporter >"$tmp/conffiles.want"
diff -u "$tmp/conffiles.want" "$tmp/conffiles.sorted" || fail "conffiles differ"

step "dpkg-deb --contents"
dpkg-deb --contents "$deb" | tee "$tmp/contents"
want() { # MODE PATH
  grep -qE "^$1 (root/root|0/0) +[0-9]+ [0-9-]+ [0-9:]+ \./$2\$" "$tmp/contents" || fail "missing $2 with mode $1"
}
want -rwxr-xr-x usr/bin/cdn-task-exporter
want -rw-r--r-- etc/cdn-task-exporter/cdn-task-exporter.yml
want -rw------- etc/default/cdn-task-exporter
want -rw-r--r-- usr/lib/systemd/system/cdn-task-exporter.service
want -rw-r--r-- usr/share/doc/cdn-task-exporter/copyright
want -rw-r--r-- usr/share/doc/cdn-task-exporter/README.md
want -rw-r--r-- usr/share/doc/cdn-task-exporter/examples/cdn-task-exporter.yml
want -rw-r--r-- usr/share/cdn-task-exporter/prometheus/alerts.yml
want -rw-r--r-- usr/share/cdn-task-exporter/grafana/cdn-tasks.json

step "dpkg-deb -x"
root="$tmp/root"
dpkg-deb -x "$deb" "$root"
bin="$root/usr/bin/cdn-task-exporter"
unit="$root/usr/lib/systemd/system/cdn-task-exporter.service"
grep -q "Apache License" "$root/usr/share/doc/cdn-task-exporter/copyright" || fail "copyright lacks the license"
for directive in DynamicUser=yes ProtectSystem=strict NoNewPrivileges=yes StateDirectory=cdn-task-exporter \
                 EnvironmentFile=-/etc/default/cdn-task-exporter; do
  grep -qx "$directive" "$unit" || fail "unit lacks $directive"
done
grep -q -- '--storage.path=/var/lib/cdn-task-exporter ' "$unit" || fail "unit does not keep its state in its StateDirectory"

step "systemd-analyze verify"
# verify insists that ExecStart's binary exists: point a copy of the unit at
# the extracted one (same file name, so the unit name is the same).
mkdir -p "$tmp/unit"
sed "s|/usr/bin/cdn-task-exporter|$bin|g" "$unit" >"$tmp/unit/cdn-task-exporter.service"
systemd-analyze verify "$tmp/unit/cdn-task-exporter.service" 2>&1 | tee "$tmp/verify"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "systemd-analyze verify failed"
[ ! -s "$tmp/verify" ] || fail "systemd-analyze verify printed warnings"
step "systemd-analyze security (exposure score, lower is better)"
systemd-analyze security --offline=yes "$tmp/unit/cdn-task-exporter.service" >"$tmp/security" 2>&1 || true
score="$(grep -oE 'Overall exposure level for [^:]+: [0-9.]+' "$tmp/security" | awk '{print $NF}')"
[ -n "$score" ] || { cat "$tmp/security"; fail "no exposure score"; }
echo "exposure: $score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { grep "✗" "$tmp/security"; fail "exposure $score above 2.0"; }

step "packaged binary: --version"
version="$("$bin" --version)"
echo "$version"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
echo "$version" | grep -qE "^cdn-task-exporter [0-9]+\.[0-9]+\.[0-9]+ \(revision $revision, rustc [0-9.]+\)\$" \
  || fail "--version does not show revision $revision: $version (a stale target/debug binary? run cargo build or cargo test first)"
[ "$(dpkg-deb --field "$deb" Version | cut -d- -f1)" = "$(echo "$version" | awk '{print $2}')" ] \
  || fail "package and binary versions differ"

step "packaged binary: check-config on the packaged config"
cfg="$root/etc/cdn-task-exporter/cdn-task-exporter.yml"
vars=()
while IFS='=' read -r name _; do
  [[ "$name" =~ ^[A-Z_][A-Z0-9_]*$ ]] && [ "$name" != CDN_TASK_EXPORTER_ARGS ] && vars+=("$name")
done <"$root/etc/default/cdn-task-exporter"
[ ${#vars[@]} -gt 0 ] || fail "the environment file names no variables"
echo "variables from /etc/default/cdn-task-exporter: ${vars[*]}"
# As shipped (values empty) the config must be refused, naming a variable.
if env -i "${vars[@]/%/=}" "$bin" --config.file="$cfg" check-config >"$tmp/check.log" 2>&1; then
  fail "check-config accepted empty credentials"
fi
cat "$tmp/check.log"
grep -qE "${vars[0]}|empty" "$tmp/check.log" || { cat "$tmp/check.log"; fail "the error does not say what is missing"; }
# With each variable set, exactly those, it passes.
env -i "${vars[@]/%/=set-by-check-deb}" "$bin" --config.file="$cfg" check-config || fail "check-config failed"

echo "check-deb: PASS in $((SECONDS - t0))s"
