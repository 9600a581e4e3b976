#!/usr/bin/env bash
# Lint, build and run the test suites: release, then (by default) ASan/UBSan.
# Usage: test.sh [--fast] [--no-asan] [-- <extra ctest args>]
#   --fast     only tests labelled "unit", release build only, no clang-tidy
#   --no-asan  skip the sanitizer build
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fast=0 asan=1
ctest_args=()
while (($#)); do
  case $1 in
    --fast) fast=1 asan=0 ;;
    --no-asan) asan=0 ;;
    --) shift; ctest_args+=("$@"); break ;;
    -h | --help) sed -n '2,5s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
((fast)) && ctest_args=(-L unit "${ctest_args[@]}")

results=() failed=0 passed_total=0 failed_total=0
# record NAME RC: remember a stage's outcome for the summary.
record() {
  if [[ $2 -eq 0 ]]; then results+=("$1: ok"); else results+=("$1: FAILED"); failed=1; fi
}

# run_ctest KIND: run ctest in build/KIND and add its counts to the totals.
run_ctest() {
  local dir="$ROOT/build/$1" rc=0 line
  log "ctest ($1)"
  ctest --test-dir "$dir" --output-on-failure --no-tests=error "${ctest_args[@]}" 2>&1 |
    tee "$dir/ctest.log" || rc=$?
  # ctest's closing line: "NN% tests passed, F tests failed out of T"
  line="$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$dir/ctest.log" | tail -n1 || true)"
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed_total=$((failed_total + BASH_REMATCH[1]))
    passed_total=$((passed_total + BASH_REMATCH[2] - BASH_REMATCH[1]))
  fi
  return "$rc"
}

"$ROOT/scripts/install-deps.sh" --tests

# The lint gate (scripts/lint.sh): formatting first (seconds); clang-tidy
# needs the release build's compile database and takes minutes (not --fast).
rc=0; "$ROOT/scripts/lint.sh" format || rc=$?
record "format" "$rc"

rc=0; "$ROOT/scripts/build.sh" release || rc=$?
record "release build" "$rc"
release_built=$((rc == 0))
if ((release_built && !fast)); then
  rc=0; "$ROOT/scripts/lint.sh" tidy || rc=$?
  record "tidy" "$rc"
fi
if ((release_built)); then
  # Started here (unless running), stopped on exit.
  pg_ensure_started
  SEGMENTS_TEST_DATABASE_URL="$("$ROOT/scripts/pg.sh" url segments_test)"
  SEGMENTS_TEST_PG_SCRIPT="$ROOT/scripts/pg.sh"
  export SEGMENTS_TEST_DATABASE_URL SEGMENTS_TEST_PG_SCRIPT
  # A real Kafka broker for the tests labelled kafka; each test makes topics
  # of its own, so a broker already running (scripts/up.sh) is shared.
  if ((!fast)); then
    kafka_ensure_started
    SEGMENTS_TEST_KAFKA_BROKERS=$KAFKA_BROKERS
    export SEGMENTS_TEST_KAFKA_BROKERS
  fi

  rc=0; run_ctest release || rc=$?
  record "release tests" "$rc"
fi

if ((asan && !release_built)); then
  results+=("asan: skipped")
elif ((asan)); then
  rc=0; "$ROOT/scripts/build.sh" asan || rc=$?
  record "asan build" "$rc"
  if ((rc == 0)); then
    rc=0
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
      UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      run_ctest asan || rc=$?
    record "asan tests" "$rc"
  fi
fi

run_on_exit # stop PostgreSQL and Kafka now so the summary stays the last output
status=OK
((failed)) && status=FAILED
printf -v stages '%s; ' "${results[@]}"
echo "test.sh: $status (${stages%; })"
echo "summary: $passed_total passed, $failed_total failed"
exit "$failed"
