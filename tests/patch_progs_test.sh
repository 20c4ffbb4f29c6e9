#!/bin/sh
# patch_progs_test.sh GREENRUN PROG... — plain pthread programs (tests/progs/plain_*.c,
# built without libgreen) run six ways: plainly; under greenrun, where no hub exists and
# every wrapper passes straight to libc; under greenrun --threads, where their threads
# are green threads and the wrapped calls park them; and so again under each other file
# rule: GREEN_PATCH_FILES=pool, =inline, and GREEN_PATCH_FILES_BIG=4k (the pool with the
# caller's buffers for nearly every call). Each run must print exactly what the plain run
# printed (each program checks glibc's answers itself and prints "ok CHECK" per check),
# but for the pinning monitor's reports: a regular file's read or write under 1 MiB (every
# one with =inline) runs on the hub's thread, and a slow disk (a loaded CI machine) can
# hold it past the monitor's 100 ms, which it reports, rightly. Its reports are dropped
# from the comparison and shown.
set -u
greenrun=$1
shift
# an ASan build of the library must not insist on coming first
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0:detect_leaks=0
export ASAN_OPTIONS
fail=0
# drop the monitor's reports: a "libgreen monitor:" line and the indented ones after it
unmonitored() {
    awk '/^libgreen monitor:/ { skip = 1; print > "/dev/stderr"; next }
         skip && /^[ \t]/ { print > "/dev/stderr"; next }
         { skip = 0; print }'
}
for prog in "$@"; do
    name=$(basename "$prog")
    want=$("$prog" 2>&1)
    rc=$?
    if [ $rc != 0 ]; then
        echo "$name, plainly: exit $rc"; echo "$want"
        fail=1
        continue
    fi
    for how in "" "--threads" "--threads pool" "--threads inline" "--threads big4k"; do
        case $how in
            *pool) got=$(GREEN_PATCH_FILES=pool "$greenrun" --threads "$prog" 2>&1; echo "rc=$?") ;;
            *inline) got=$(GREEN_PATCH_FILES=inline "$greenrun" --threads "$prog" 2>&1; echo "rc=$?") ;;
            *big4k) got=$(GREEN_PATCH_FILES_BIG=4k "$greenrun" --threads "$prog" 2>&1; echo "rc=$?") ;;
            *) got=$("$greenrun" $how "$prog" 2>&1; echo "rc=$?") ;;
        esac
        rc=${got##*rc=}
        got=$(printf '%s\n' "${got%rc=*}" | unmonitored)
        if [ $rc != 0 ] || [ "$got" != "$want" ]; then
            echo "$name under greenrun $how (exit $rc) printed:"; echo "$got"
            echo "--- plainly:"; echo "$want"
            fail=1
        fi
    done
    echo "$name: $(echo "$want" | grep -c '^ok ') checks, the same plainly and under greenrun (--threads; pool, inline, big4k)"
done
exit $fail
