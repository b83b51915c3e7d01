#!/usr/bin/env bash
# Runs the whole test suite: a normal build, then an ASan+UBSan build (`asan` runs only that).
set -euo pipefail
cd "$(dirname "$0")/.."

run_suite() {
    local dir=$1; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@"
    fi
    ninja -C "$dir"
    meson test -C "$dir" --print-errorlogs --num-processes 2
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# libevent's and lws's own allocations on exit paths are not ours to chase.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0}

# The checked-in .clang-format is part of the build's rules (STYLE.md 1.11).
check_format() {
    if command -v clang-format >/dev/null; then
        bash scripts/format.sh --check
        echo "format: clang-format clean"
    else
        echo "format: clang-format not installed, skipped"
    fi
}

case "${1:-all}" in
    plain) run_suite build ;;
    asan) run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug ;;
    all)
        check_format
        run_suite build
        run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
        ;;
    *) echo "usage: $0 [plain|asan|all]" >&2; exit 2 ;;
esac
