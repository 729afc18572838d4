#!/usr/bin/env bash
# First sync and steady state per vendor (issue 19 part 4): the release
# binary against one simulated account per vendor at 10,000 and 100,000
# tasks a day, scraped every 15 s. Prints a line per run, then the table
# README's Benchmarks section quotes. Knobs: BENCH_VENDORS, BENCH_RATES,
# BENCH_INTERVAL, BENCH_STEADY, BENCH_SYNC_MAX, BENCH_DIR (see benches/sync.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin cdn-task-exporter
export BENCH_EXPORTER="${BENCH_EXPORTER:-$PWD/target/release/cdn-task-exporter}"
exec cargo bench --bench sync
