#!/usr/bin/env bash
# Container smoke test without a Docker engine or registry access.
#
# Assembles a minimal runtime image from scratch with buildah (the binary,
# the shared libraries ldd reports, the dynamic loader, /etc/passwd with a
# non-root user, CA certificates), then runs inside it: --version, and the
# exporter serving on a loopback port, scraped once from the host. This
# checks what the Dockerfile's runtime stage relies on (a dynamically linked
# glibc binary running as non-root in an otherwise empty filesystem) on a
# machine that cannot pull rust:1-bookworm or distroless.
#
#   scripts/buildah-smoke.sh              # cargo build --release, then test
#   scripts/buildah-smoke.sh PATH/TO/BIN  # test an existing binary
#
# Needs root (apt, buildah's chroot isolation). Everything it creates (a
# private buildah storage root, its container and image) is removed at exit.
set -euo pipefail

t0=$(date +%s.%N)
cd "$(dirname "$0")/.."
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf '\n== [%ss] %s\n' "$(elapsed)" "$*"; }

IMAGE=localhost/cdn-task-exporter-smoke:latest
UID_NONROOT=10052
PORT=${SMOKE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 19052)}
STORE=$(mktemp -d "${TMPDIR:-/var/tmp}/cdn-exporter-buildah.XXXXXX")
RUNROOT="$STORE/run"
B=(buildah --root "$STORE/storage" --runroot "$RUNROOT" --storage-driver vfs)
build_ctr="" run_ctr="" image_id="" server_pid="" exporter_pid=""

cleanup() {
  local rc=$?
  set +e
  step "cleanup"
  [ -n "$exporter_pid" ] && kill "$exporter_pid" 2>/dev/null
  [ -n "$server_pid" ] && { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null; }
  [ -n "$run_ctr" ] && "${B[@]}" rm "$run_ctr" >/dev/null && echo "removed container $run_ctr"
  [ -n "$build_ctr" ] && "${B[@]}" rm "$build_ctr" >/dev/null && echo "removed container $build_ctr"
  [ -n "$image_id" ] && "${B[@]}" rmi "$image_id" >/dev/null && echo "removed image $IMAGE ($image_id)"
  rm -rf "$STORE" && echo "removed buildah storage $STORE"
  if [ "$rc" -eq 0 ]; then
    echo "buildah-smoke: PASS in $(elapsed)s"
  else
    echo "buildah-smoke: FAIL (exit $rc) after $(elapsed)s"
  fi
}
trap cleanup EXIT

step "buildah"
if ! command -v buildah >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  echo "installing buildah with apt"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends buildah ca-certificates >/dev/null
fi
buildah --version

step "binary"
if [ $# -ge 1 ]; then
  BIN=$1
else
  cargo build --release --locked --bin cdn-task-exporter
  BIN=target/release/cdn-task-exporter
fi
ls -l "$BIN"
file "$BIN" 2>/dev/null || true

step "shared libraries (ldd)"
ldd "$BIN"
# Every absolute path ldd prints: the libraries and the dynamic loader.
mapfile -t LIBS < <(ldd "$BIN" | grep -oE '/[^ ]+' | sort -u)

step "assemble image from scratch"
build_ctr=$("${B[@]}" from scratch)
root=$("${B[@]}" mount "$build_ctr")
install -D -m 0755 "$BIN" "$root/usr/local/bin/cdn-task-exporter"
for lib in "${LIBS[@]}"; do
  # --parents keeps the path (the loader's name is baked into the binary);
  # -L copies the file a symlink points to.
  cp -L --parents "$lib" "$root/"
  echo "  + $lib"
done
mkdir -p "$root/etc/ssl/certs" "$root/etc/cdn-task-exporter" "$root/tmp"
chmod 1777 "$root/tmp"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nexporter:x:%s:%s:cdn-task-exporter:/nonexistent:/sbin/nologin\n' \
  "$UID_NONROOT" "$UID_NONROOT" >"$root/etc/passwd"
printf 'root:x:0:\nexporter:x:%s:\n' "$UID_NONROOT" >"$root/etc/group"
# A config whose one account points nowhere: enough to serve and scrape
# without credentials (used when the binary has no `demo` subcommand).
cat >"$root/etc/cdn-task-exporter/config.yml" <<'EOF'
accounts:
  - name: smoke
    vendor: testing
    endpoint: http://127.0.0.1:9
    credentials: { id: smoke, secret: not-a-secret }
EOF
"${B[@]}" umount "$build_ctr" >/dev/null
"${B[@]}" config \
  --user "$UID_NONROOT:$UID_NONROOT" \
  --port 10052 \
  --entrypoint '["/usr/local/bin/cdn-task-exporter"]' \
  --cmd '--config.file=/etc/cdn-task-exporter/config.yml' \
  --label org.opencontainers.image.title=cdn-task-exporter-smoke \
  "$build_ctr"
image_id=$("${B[@]}" commit --quiet "$build_ctr" "$IMAGE")
"${B[@]}" images
"${B[@]}" inspect --format 'user={{.OCIv1.Config.User}} entrypoint={{.OCIv1.Config.Entrypoint}} cmd={{.OCIv1.Config.Cmd}} ports={{.OCIv1.Config.ExposedPorts}}{{println}}' "$IMAGE"
du -sh "$root" 2>/dev/null || true

step "run: --version"
run_ctr=$("${B[@]}" from --pull=never "$IMAGE")
"${B[@]}" run --isolation chroot "$run_ctr" -- /usr/local/bin/cdn-task-exporter --version

step "run: serve on 127.0.0.1:$PORT"
if "$BIN" --help | grep -qE '^[[:space:]]+demo([[:space:]]|$)'; then
  args=(demo --web.listen-address "127.0.0.1:$PORT")
else
  echo "(no demo subcommand in this binary: serving a config with a testing account pointing nowhere)"
  args=(--config.file /etc/cdn-task-exporter/config.yml --web.listen-address "127.0.0.1:$PORT")
fi
echo "cdn-task-exporter ${args[*]}"
LOG="$STORE/server.log"
"${B[@]}" run --isolation chroot "$run_ctr" -- /usr/local/bin/cdn-task-exporter "${args[@]}" >"$LOG" 2>&1 &
server_pid=$!
ready=""
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/-/ready" >/dev/null 2>&1; then ready=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
cat "$LOG"
[ -n "$ready" ] || { echo "exporter did not become ready"; exit 1; }
exporter_pid=$(ss -Hltnp "sport = :$PORT" | grep -oE 'pid=[0-9]+' | head -1 | cut -d= -f2)
echo "listening process (host view):"
ps -o pid,user,uid,args -p "$exporter_pid"
uid=$(ps -o uid= -p "$exporter_pid" | tr -d ' ')
[ "$uid" = "$UID_NONROOT" ] || { echo "exporter runs as uid $uid, not $UID_NONROOT"; exit 1; }

step "scrape: GET http://127.0.0.1:$PORT/metrics"
body=$(curl -fsS -D "$STORE/headers" -H 'X-Prometheus-Scrape-Timeout-Seconds: 5' "http://127.0.0.1:$PORT/metrics")
head -1 "$STORE/headers"
grep -i '^content-type' "$STORE/headers"
grep -E '^cdn_(vendor_up|exporter_build_info)' <<<"$body" | head -5 || true
echo "... $(echo "$body" | grep -c '^cdn_') cdn_* samples, $(echo "$body" | wc -l) lines"
grep -q '^cdn_vendor_up{' <<<"$body" || { echo "no cdn_vendor_up in the scrape"; exit 1; }

step "stop"
kill "$exporter_pid"
wait "$server_pid" && echo "exporter exited 0 on SIGTERM" || echo "exporter exited with $?"
exporter_pid="" server_pid=""
tail -1 "$LOG"
