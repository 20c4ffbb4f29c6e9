#!/bin/sh
# monitor_copy_test.sh GREENRUN PROG — tests/progs/plain_bigcopy under greenrun --threads
# with the pinning detector at 1 ms and GREEN_PATCH_FILES=inline (by default a copy of
# 1 MiB or more leaves the hub's thread): its SIGURG, sent to take the backtrace of a hub
# held by a copy between files, must not cut the copy short (the kernel ends a sendfile or
# copy_file_range at a signal with what it moved so far). Output must be the plain run's;
# the detector must have reported the copies (else the test proved nothing).
set -u
greenrun=$1 prog=$2
# an ASan build of the library must not insist on coming first
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0:detect_leaks=0
export ASAN_OPTIONS
want=$("$prog") || { echo "plainly: exit $?"; exit 1; }
# by default the copies run on the pool: the same output
got=$("$greenrun" --threads "$prog") || { echo "under greenrun --threads: exit $?"; exit 1; }
[ "$got" = "$want" ] || { echo "under greenrun --threads:"; echo "$got"; echo "--- plainly:"; echo "$want"; exit 1; }
err=$(mktemp /tmp/green-monitor-copy.XXXXXX)
trap 'rm -f "$err"' EXIT
# a loaded machine may keep the detector from seeing a copy in one run: up to 5 runs,
# each must be right, one must have been reported
for attempt in 1 2 3 4 5; do
    got=$(GREEN_MONITOR_MS=1 GREEN_PATCH_FILES=inline "$greenrun" --threads "$prog" 2>"$err")
    rc=$?
    cat "$err"
    if [ $rc != 0 ] || [ "$got" != "$want" ]; then
        echo "under greenrun --threads, GREEN_MONITOR_MS=1 GREEN_PATCH_FILES=inline (exit $rc):"; echo "$got"
        echo "--- plainly:"; echo "$want"
        exit 1
    fi
    if grep -q "sendfile\|copy_file_range" "$err"; then
        echo "$(echo "$want" | grep -c '^ok ') whole copies (run $attempt), the detector's reports above"
        exit 0
    fi
done
echo "MISSING: no detector report of a copy in 5 runs"
exit 1
