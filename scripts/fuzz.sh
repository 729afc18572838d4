#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while, on nightly, in one process (no -jobs).
#
#   scripts/fuzz.sh TARGET SECONDS [extra libFuzzer args...]
#   scripts/fuzz.sh list
#
# Targets: volcengine aliyun ucloud cdnetworks tencent cloudfront config web_config headers_time
# (entry points in src/fuzzing.rs). New inputs go to a scratch corpus under
# fuzz/target/, never into the committed seed corpus fuzz/corpus/TARGET;
# crashes land in fuzz/artifacts/TARGET/. Commit a crash input (renamed
# after the bug) into fuzz/corpus/TARGET so tests/fuzz_corpus.rs replays it
# on every `cargo test`.
#
# Not part of CI: needs the nightly toolchain and cargo-fuzz (installed
# from crates.io if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is required: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
if [ "${1:-}" = list ]; then
    cd fuzz && exec cargo +nightly fuzz list
fi
if [ $# -lt 2 ]; then
    echo "usage: $0 TARGET SECONDS [libFuzzer args...] | $0 list" >&2
    exit 2
fi
target=$1 secs=$2
shift 2

scratch=fuzz/target/corpus/$target
mkdir -p "$scratch" "fuzz/artifacts/$target"
cd fuzz
# -s none: the code is safe Rust (unsafe_code = deny), so no sanitizer is
# needed to see a bug: panics (overflow included, debug assertions are on)
# abort and libFuzzer records the input.
exec nice -n 10 cargo +nightly fuzz run -s none "$target" \
    "../$scratch" "corpus/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 \
    -max_len=65536 -timeout=10 -rss_limit_mb=2048 "$@"
