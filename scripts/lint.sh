#!/usr/bin/env bash
# The lint gate: formatting and clang-tidy. Fails on any finding.
# Usage: lint.sh [format [--fix] | tidy [FILE.cc...]]   (default: both)
#   format  clang-format (.clang-format) over the tracked *.cc/*.h files, gofmt over the Go modules
#   --fix   rewrite the files with clang-format and gofmt instead of failing
#   tidy    clang-tidy (.clang-tidy) over server/src/*.cc (or just FILE.cc...), with build/release's
#           compile database (configured, and protobuf headers generated, if missing)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mode=all fix=0 only=()
while (($#)); do
  case $1 in
    format | tidy) mode=$1 ;;
    --fix) fix=1 ;;
    -h | --help) sed -n '2,7s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) die "unknown argument: $1 (see --help)" ;;
    /*) only+=("$1") ;;
    *) only+=("$PWD/$1") ;; # the script works from $ROOT
  esac
  shift
done
if ((fix)); then
  [[ $mode == tidy ]] && die "--fix applies to format only"
  mode=format
fi
((${#only[@]} == 0)) || [[ $mode == tidy ]] || die "files can only be given to tidy (see --help)"
cd "$ROOT"

# The tree is formatted with Debian's clang-format 14; other majors disagree
# on details.
CLANG_FORMAT_MAJOR=14

need() {
  command -v "$1" >/dev/null || die "$1 not found: run scripts/install-deps.sh"
}

# The tracked Go files of every module; generated code (*/gen/, untracked
# anyway) is left alone.
go_files() {
  git ls-files -- '*.go' ':(exclude)*/gen/*'
}

lint_format() {
  local gofmt cxx=() go=() bad=() f version rc=0
  need clang-format
  gofmt=$(command -v gofmt || echo /usr/local/go/bin/gofmt)
  [[ -x $gofmt ]] || die "gofmt not found (expected /usr/local/go/bin/gofmt)"
  version=$(clang-format --version)
  [[ $version =~ version\ ([0-9]+)\. && ${BASH_REMATCH[1]} == "$CLANG_FORMAT_MAJOR" ]] ||
    warn "the tree is formatted with clang-format $CLANG_FORMAT_MAJOR; this is: $version"
  mapfile -t cxx < <(git ls-files -- '*.cc' '*.h')
  mapfile -t go < <(go_files)
  ((${#cxx[@]} && ${#go[@]})) || die "no tracked C++ or Go files found"

  if ((fix)); then
    log "clang-format -i: ${#cxx[@]} files; gofmt -w: ${#go[@]} files"
    clang-format -i -- "${cxx[@]}" || return 1
    "$gofmt" -w "${go[@]}" || return 1
    return 0
  fi

  log "clang-format: ${#cxx[@]} C++ files"
  mapfile -t bad < <(clang-format --dry-run --Werror -- "${cxx[@]}" 2>&1 |
    sed -nE 's/^(.+):[0-9]+:[0-9]+: error: code should be clang-formatted.*/\1/p' | sort -u)
  if ((${#bad[@]})); then
    rc=1
    log "not clang-formatted (${#bad[@]} files):"
    printf '  %s\n' "${bad[@]}" >&2
    for f in "${bad[@]}"; do
      diff -u --label "$f" --label "$f (clang-format)" "$f" <(clang-format "$f") | head -n 30 >&2 || true
    done
  fi

  log "gofmt: ${#go[@]} Go files"
  mapfile -t bad < <("$gofmt" -l "${go[@]}")
  if ((${#bad[@]})); then
    rc=1
    log "not gofmt-ed (${#bad[@]} files):"
    printf '  %s\n' "${bad[@]}" >&2
    "$gofmt" -d "${bad[@]}" | head -n 60 >&2 || true
  fi

  ((rc == 0)) || log "fix with: scripts/lint.sh --fix"
  return "$rc"
}

# tidy_one FILE: clang-tidy on one file. Its output is printed in one piece
# (the runs are parallel) and kept in $LINT_OUT/<file>.log, .failed too if
# it has findings.
# shellcheck disable=SC2317  # invoked via xargs
tidy_one() {
  local out rc=0 keep="$LINT_OUT/${1//\//_}"
  out=$(clang-tidy -p "$LINT_BUILD" --quiet --warnings-as-errors='*' \
    --extra-arg=-Wno-unknown-warning-option "$1" 2>&1) || rc=$?
  # Counts of the (suppressed) warnings in system and generated headers.
  out=$(grep -vE '^[0-9]+ (warning|error)s?( and [0-9]+ errors?)? generated\.$' <<<"$out" || true)
  [[ -z $out ]] || printf '%s\n' "$out"
  printf '%s\n' "$out" >"$keep.log"
  if ((rc)); then touch "$keep.failed"; fi
  return 0
}

lint_tidy() {
  local build="$ROOT/build/release" files=() targets=() start=$SECONDS jobs failed
  need clang-tidy
  need ninja
  if [[ ! -f $build/compile_commands.json ]]; then
    log "no compile database in $build: configuring"
    "$ROOT/scripts/build.sh" release --configure-only
  fi
  # The sources include the generated protobuf headers: make sure they exist
  # (protoc only, a no-op after a build).
  mapfile -t targets < <(ninja -C "$build" -t targets all | sed -nE 's/^([^/][^:]*\.pb\.h): .*/\1/p')
  ((${#targets[@]})) || die "no generated protobuf headers among the targets of $build"
  ninja -C "$build" "${targets[@]}" >/dev/null || die "generating the protobuf headers failed"

  if ((${#only[@]})); then
    files=("${only[@]}")
  else
    mapfile -t files < <(git ls-files -- 'server/src/*.cc')
  fi
  ((${#files[@]})) || die "no server/src/*.cc files found"
  jobs=$(nproc)
  log "clang-tidy: ${#files[@]} files, $jobs in parallel"
  LINT_BUILD=$build LINT_OUT=$(mktemp -d)
  export LINT_BUILD LINT_OUT
  export -f tidy_one
  # shellcheck disable=SC2016  # $1 is expanded by the inner bash
  printf '%s\0' "${files[@]}" | xargs -0 -n1 -P "$jobs" bash -c 'tidy_one "$1"' _
  failed=$(find "$LINT_OUT" -name '*.failed' | wc -l)
  if ((failed)); then
    # A finding in a header shows up once per file including it: list each once.
    log "clang-tidy findings in $failed of ${#files[@]} files ($((SECONDS - start)) s):"
    cat "$LINT_OUT"/*.log | sed -nE "s#^$ROOT/##; /^[^ ]+:[0-9]+:[0-9]+: (warning|error): /p" | sort -u -t: -k1,1 -k2,2n -k3,3n -k4 >&2
    rm -rf "$LINT_OUT"
    return 1
  fi
  rm -rf "$LINT_OUT"
  log "clang-tidy: clean ($((SECONDS - start)) s)"
}

rc=0
case $mode in
  format) lint_format || rc=$? ;;
  tidy) lint_tidy || rc=$? ;;
  all)
    lint_format || rc=$?
    lint_tidy || rc=$?
    ;;
esac
if ((rc)); then log "FAILED"; else log "ok"; fi
exit "$rc"
