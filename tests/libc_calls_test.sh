#!/usr/bin/env bash
# libc_calls_test.sh LIBGREEN_PATCH OBJECT... — libgreen's own code never calls a libc
# function by a name that libgreen-patch.so interposes: such a call would land in the
# wrapper (with the patch library loaded, a nanosleep in a signal handler would park a
# green thread there; a pthread_cond_destroy would read glibc's bytes as a green
# condition). The core reaches libc through its green__sys table (src/sys.h); sys.c,
# which fills the table, is the one object allowed to name them.
# Each OBJECT is one of the core's object files; fails listing "object: name" pairs.
# One name is exempt: calloc. Its wrapper (src/patch/calloc.c) never parks and reads no
# object, it only chooses which pages to clear; and libgreen's blocks must come from the
# program's own malloc (jemalloc, say), which their frees reach, where a table entry
# would name libc's.
set -euo pipefail
exempt="calloc"
patch=$1
shift
nm_=${NM:-nm}
interposed=$("$nm_" -D --defined-only "$patch" | awk '$2 ~ /^[TWi]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
[[ -n $interposed ]] || { echo "libc_calls: no interposed names found in $patch"; exit 1; }
fail=0
for o in "$@"; do
    [[ $(basename "$o") == sys.c.o ]] && continue
    while read -r name; do
        if grep -qxF "$name" <<<"$interposed" && ! grep -qxF "$name" <<<"$exempt"; then
            echo "libc_calls: $(basename "$o") calls $name directly (use green__sys.$name)"
            fail=1
        fi
    done < <("$nm_" -u "$o" | awk '{ sub(/@.*/, "", $2); print $2 }' | sort -u)
done
(( fail == 0 )) && echo "libc_calls: $# core objects call no interposed libc name directly"
exit $fail
