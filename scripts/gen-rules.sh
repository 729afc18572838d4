#!/usr/bin/env bash
# Generates the shipped alert rules, their promtool unit tests and the Grafana
# dashboard from the templates in mixin/ (monitoring-mixin style: one
# `_config` for the whole set).
#
#   scripts/gen-rules.sh            # rewrite prometheus/alerts.yml, prometheus/alerts_test.yml,
#                                   # grafana/cdn-tasks.json in this repository
#   scripts/gen-rules.sh OUTDIR     # write alerts.yml, alerts_test.yml, cdn-tasks.json into OUTDIR
#
# Settings (environment variables; defaults are what the repository ships):
#   RUNBOOK_URL_PATTERN     runbook URL of an alert; %s is the alert name in lower case
#                           default: https://github.com/cdn-task-exporter/cdn-task-exporter/blob/main/README.md#%s
#   DASHBOARD_RUNBOOK_URL   the dashboard's "Runbooks" link
#                           default: RUNBOOK_URL_PATTERN with %s = alerts-and-runbooks
#   TASKS_URL_BASE          where the tasks_url annotation of CdnPurgeTaskFailed,
#                           CdnPrefetchFailureRatioHigh and CdnTaskStuck points (the exporter's
#                           /tasks page is appended); a Go template over the alert's labels.
#                           default: http://{{ $labels.instance }} (set it when the instance
#                           address is not reachable from where people read alerts, e.g.
#                           https://cdn-exporter.example.com or a reverse proxy per instance)
#   PURGE_FAILED_MIN_COUNT  CdnPurgeTaskFailed: failed purges of one type in 15m (default 1)
#   PURGE_FAILED_MIN_RATIO  CdnPurgeTaskFailed: and at least this share of the purges of that
#                           type finished in 15m, 0..1 (default 0: every failure alerts)
#   TASK_STUCK_AGE          CdnTaskStuck: seconds a task may stay pending/running (default 3600)
#   TASK_GIVE_UP_AGE        CdnTaskStuck: older tasks stop holding the alert (default 21600)
#                           Both ages must be one of 900 1800 3600 21600 86400, the
#                           older_than values of cdn_tasks_unfinished_older_than.
#
# The unit tests (alerts_test.yml) assume the default thresholds; only the runbook
# URLs in them follow RUNBOOK_URL_PATTERN.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
pattern="${RUNBOOK_URL_PATTERN:-https://github.com/cdn-task-exporter/cdn-task-exporter/blob/main/README.md#%s}"
default_tasks_base='http://{{ $labels.instance }}'
tasks_base="${TASKS_URL_BASE:-$default_tasks_base}"
tasks_base="${tasks_base%/}"
# The dashboard's data links: the same base, the series' instance label in Grafana's syntax.
dashboard_tasks_base="${tasks_base//'{{ $labels.instance }}'/\${__field.labels.instance\}}"
# The unit tests' series all carry instance="exporter:10052".
tasks_test_base="${tasks_base//'{{ $labels.instance }}'/exporter:10052}"
min_count="${PURGE_FAILED_MIN_COUNT:-1}"
min_ratio="${PURGE_FAILED_MIN_RATIO:-0}"
stuck="${TASK_STUCK_AGE:-3600}"
give_up="${TASK_GIVE_UP_AGE:-21600}"

die() { echo "gen-rules: $*" >&2; exit 2; }
case "$pattern" in *%s*) ;; *) die "RUNBOOK_URL_PATTERN must contain %s (the alert name): $pattern" ;; esac
case "$pattern" in *'|'*|*$'\n'*|*'\'*) die "RUNBOOK_URL_PATTERN must not contain |, \\ or a newline" ;; esac
prefix="${pattern%%%s*}"
suffix="${pattern#*%s}"
dashboard_url="${DASHBOARD_RUNBOOK_URL:-${prefix}alerts-and-runbooks${suffix}}"
case "$dashboard_url" in *'|'*|*$'\n'*|*'\'*|*'"'*) die "DASHBOARD_RUNBOOK_URL must not contain |, \\, \" or a newline" ;; esac
case "$tasks_base" in *'|'*|*$'\n'*|*'\'*|*"'"*) die "TASKS_URL_BASE must not contain |, \\, ' or a newline" ;; esac
[[ "$min_count" =~ ^[1-9][0-9]*$ ]] || die "PURGE_FAILED_MIN_COUNT must be a whole number >= 1: $min_count"
[[ "$min_ratio" =~ ^(0(\.[0-9]+)?|1(\.0+)?)$ ]] || die "PURGE_FAILED_MIN_RATIO must be a number in 0..1: $min_ratio"
human() {
  case "$2" in
    900) echo 15m ;; 1800) echo 30m ;; 3600) echo 1h ;; 21600) echo 6h ;; 86400) echo 1d ;;
    *) die "$1 must be one of 900 1800 3600 21600 86400 (seconds): $2" ;;
  esac
}
stuck_h="$(human TASK_STUCK_AGE "$stuck")"
give_up_h="$(human TASK_GIVE_UP_AGE "$give_up")"
[ "$stuck" -lt "$give_up" ] || die "TASK_STUCK_AGE ($stuck) must be below TASK_GIVE_UP_AGE ($give_up)"

# sed replacement text: escape & (the delimiter | is refused above).
esc() { printf '%s' "$1" | sed 's/&/\\\&/g'; }
render() {
  sed -E \
    -e "s|@RUNBOOK\(([A-Za-z]+)\)@|$(esc "$prefix")\L\1\E$(esc "$suffix")|g" \
    -e "s|@TASKS_URL_BASE@|$(esc "$tasks_base")|g" \
    -e "s|@DASHBOARD_TASKS_URL_BASE@|$(esc "$dashboard_tasks_base")|g" \
    -e "s|@TASKS_URL_TEST_BASE@|$(esc "$tasks_test_base")|g" \
    -e "s|@DASHBOARD_RUNBOOK_URL@|$(esc "$dashboard_url")|g" \
    -e "s|@PURGE_FAILED_MIN_COUNT@|$min_count|g" \
    -e "s|@PURGE_FAILED_MIN_RATIO@|$min_ratio|g" \
    -e "s|@TASK_STUCK_AGE@|$stuck|g" \
    -e "s|@TASK_STUCK_AGE_HUMAN@|$stuck_h|g" \
    -e "s|@TASK_GIVE_UP_AGE@|$give_up|g" \
    -e "s|@TASK_GIVE_UP_AGE_HUMAN@|$give_up_h|g" \
    "$1"
}

if [ $# -ge 1 ]; then
  out="$1"; mkdir -p "$out"
  alerts="$out/alerts.yml"; tests="$out/alerts_test.yml"; dash="$out/cdn-tasks.json"
else
  alerts="$root/prometheus/alerts.yml"; tests="$root/prometheus/alerts_test.yml"; dash="$root/grafana/cdn-tasks.json"
fi
render "$root/mixin/alerts.yml.in" >"$alerts"
render "$root/mixin/alerts_test.yml.in" >"$tests"
render "$root/mixin/cdn-tasks.json.in" >"$dash"
if grep -n '@[A-Z_]*[(@]' "$alerts" "$tests" "$dash"; then
  die "unreplaced placeholder left (above)"
fi
echo "gen-rules: wrote $alerts $tests $dash"
