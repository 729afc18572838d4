#!/usr/bin/env bash
# Generate CDNetworks API-key (HTTP Basic + HMAC-SHA1 of the Date header) test vectors
# by running the shell/openssl pipeline from the CDNetworks doc
# ("推荐-查询文件预取操作记录", /ccm/fetch/ItemIdQuery request example) verbatim.
#
# Usage: bash tools/vectors/cdnetworks.sh [OUTPUT_DIR]
#   OUTPUT_DIR defaults to testdata/signing/cdnetworks under the repo root.
#   Needs: bash, GNU date, openssl, base64 (coreutils), od, jq; optional curl+python3
#   for a cross-check of curl -u (set CDN_SKIP_CURL_CHECK=1 to skip it).
# Output depends only on the inputs below (no clock, no network).
set -euo pipefail
export LC_ALL=C TZ=UTC

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/testdata/signing/cdnetworks}"

# One-shot HTTP listener on 127.0.0.1 used only to capture the headers curl sends.
CAPTURE_SERVER='
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
c, _ = s.accept(); data = b""
while b"\r\n\r\n" not in data:
    chunk = c.recv(65536)
    if not chunk: break
    data += chunk
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); c.close()
for line in data.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
    k, _, v = line.decode("latin-1").partition(":")
    if k.lower() in ("authorization", "date"):
        print(k.lower() + "\t" + v.strip())
'

curl_check() { # user password date expected_authorization
  [ "${CDN_SKIP_CURL_CHECK:-0}" = 1 ] && return 0
  command -v curl >/dev/null && command -v python3 >/dev/null || return 0
  local tmp port got_auth got_date pid
  tmp="$(mktemp -d)"
  python3 -c "$CAPTURE_SERVER" "$tmp/port" >"$tmp/cap" & pid=$!
  for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
  port="$(cat "$tmp/port")"
  curl -s -o /dev/null -X POST -u "$1:$2" -H "Date:$3" -H "Content-Type: application/json" \
       -d '{}' "http://127.0.0.1:$port/ccm/fetch/ItemIdQuery"
  wait "$pid"
  got_auth="$(awk -F'\t' '$1=="authorization"{print $2}' "$tmp/cap")"
  got_date="$(awk -F'\t' '$1=="date"{print $2}' "$tmp/cap")"
  rm -rf "$tmp"
  [ "$got_auth" = "$4" ] || { echo "curl Authorization mismatch: $got_auth != $4" >&2; exit 1; }
  [ "$got_date" = "$3" ] || { echo "curl Date mismatch: $got_date != $3" >&2; exit 1; }
}

gen_case() { # name description source username apiKey epoch_seconds
  local name="$1" description="$2" source="$3" username="$4" apiKey="$5" epoch="$6"
  local date_command password_command hmac_command basic_command date password hmac_hex
  local credentials token authorization curl_command
  # The doc's date command, pinned to a fixed instant with -d @epoch.
  date_command="env LANG=\"en_US.UTF-8\" date -u -d @$epoch \"+%a, %d %b %Y %H:%M:%S GMT\""
  date="$(bash -c "$date_command")"
  # The doc's password pipeline, verbatim, with the variables substituted.
  password_command="echo -en \"$date\" | openssl dgst -sha1 -hmac $apiKey -binary | openssl enc -base64"
  password="$(bash -c "$password_command")"
  hmac_command="echo -en \"$date\" | openssl dgst -sha1 -hmac $apiKey -binary | od -An -v -tx1 | tr -d ' \\n'"
  hmac_hex="$(bash -c "$hmac_command")"
  credentials="$username:$password"
  basic_command="printf '%s' '$credentials' | openssl enc -base64 -A"
  token="$(bash -c "$basic_command")"
  # Cross-checks: coreutils base64 and a python HMAC.
  [ "$token" = "$(printf '%s' "$credentials" | base64 -w0)" ] || { echo "base64 mismatch" >&2; exit 1; }
  if command -v python3 >/dev/null; then
    [ "$password" = "$(python3 -c 'import base64,hmac,hashlib,sys; print(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha1).digest()).decode())' "$apiKey" "$date")" ] \
      || { echo "python HMAC mismatch" >&2; exit 1; }
  fi
  authorization="Basic $token"
  curl_command="curl -i --url \"https://api.cdnetworks.com/ccm/fetch/ItemIdQuery\" -X \"POST\" -u \"$username:$password\" -H \"Date:$date\" -H \"Content-Type: application/json\" -d '{...}'"
  curl_check "$username" "$password" "$date" "$authorization"

  mkdir -p "$OUT/$name"
  jq -n \
    --arg case_name "$name" --arg description "$description" --arg source "$source" \
    --arg username "$username" --arg api_key "$apiKey" --argjson epoch_seconds "$epoch" \
    --arg date_command "$date_command" --arg password_command "$password_command" \
    --arg hmac_hex_command "$hmac_command" --arg basic_command "$basic_command" \
    --arg curl_command "$curl_command" \
    --arg date "$date" --arg hmac_sha1_hex "$hmac_hex" --arg password "$password" \
    --arg basic_credentials "$credentials" --arg basic_token "$token" \
    --arg authorization "$authorization" \
    '{input: {case_name: $case_name, description: $description, source: $source,
              username: $username, api_key: $api_key, epoch_seconds: $epoch_seconds,
              date_command: $date_command, password_command: $password_command,
              hmac_hex_command: $hmac_hex_command, basic_command: $basic_command,
              curl_command: $curl_command},
      expected: {date: $date, string_to_sign: $date, hmac_sha1_hex: $hmac_sha1_hex,
                 password: $password, basic_credentials: $basic_credentials,
                 basic_token: $basic_token, authorization: $authorization,
                 date_header_line: ("Date: " + $date),
                 authorization_header_line: ("Authorization: " + $authorization)}}' \
    >"$OUT/$name/case.json"
  printf '%s\t%s\n' "$name" "$authorization"
}

gen_case doc-example-date-placeholder-credentials \
  "Date from the doc's RFC 1123 example; username/apiKey are the doc script's literal placeholders." \
  "date: RFC 1123 example quoted in vendors.md 4.2; username/apiKey: placeholder strings of the CDNetworks doc script; no vendor-published expected output exists" \
  username apiKey 1337283478          # Thu, 17 May 2012 19:37:58 GMT
gen_case single-digit-day \
  "Day of month < 10: the doc's date format (%d) zero-pads it (05)." \
  synthetic user@example.com abc123XYZ 1707102245   # Mon, 05 Feb 2024 03:04:05 GMT
gen_case just-after-midnight-utc8 \
  "2024-03-01 00:00:30 +08:00, i.e. still 29 Feb in GMT; apiKey contains + / =." \
  synthetic tenant_01 'k+/=Ab9+/==Zz' 1709222430    # Thu, 29 Feb 2024 16:00:30 GMT
gen_case just-before-midnight-utc8 \
  "2024-12-31 23:59:59 +08:00 (15:59:59 GMT); apiKey ends in ==." \
  synthetic tenant_01 's3cr3t/+==' 1735660799      # Tue, 31 Dec 2024 15:59:59 GMT
gen_case midnight-utc-new-year \
  "Exactly 00:00:00 GMT on 1 Jan 2025." \
  synthetic cdn-exporter 'AbCdEfGhIjKlMnOp' 1735689600 # Wed, 01 Jan 2025 00:00:00 GMT
gen_case long-api-key-over-64-bytes \
  "apiKey of 100 bytes (> SHA-1 block size, so HMAC hashes the key first)." \
  synthetic user@example.com "$(printf 'K%.0s' $(seq 1 50))$(printf '9/+=%.0s' $(seq 1 12))z9" 1700000000
