#!/usr/bin/env bash
# 1,000 accounts in one exporter (issue 19 part 3): the release binary
# against simulated Volcengine, Aliyun and UCloud endpoints (one server per
# vendor, each account its own simulator behind it), scraped every 15 s
# for 10 minutes. Prints a line per scrape, then the table README's
# Benchmarks section quotes. Knobs: BENCH_ACCOUNTS, BENCH_SECONDS,
# BENCH_INTERVAL, BENCH_VENDORS, BENCH_DIR (see benches/thousand.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin cdn-task-exporter
export BENCH_EXPORTER="${BENCH_EXPORTER:-$PWD/target/release/cdn-task-exporter}"
exec cargo bench --bench thousand
