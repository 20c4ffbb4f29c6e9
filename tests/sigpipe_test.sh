#!/bin/sh
# sigpipe_test.sh GREENRUN SIGPIPE_PROG — an unmodified program keeps POSIX's SIGPIPE under
# libgreen-patch.so (libgreen's own writes raise none; its wrappers of the program's
# write and send must, exactly as libc's do): each case of tests/progs/sigpipe.c prints
# and exits the same with and without tools/greenrun, and with --threads.
set -u
greenrun=$1 prog=$2
fail=0
for fd in pipe socket; do
    for action in default ignore handler blocked; do
        for where in main thread; do
            want=$("$prog" $fd $action $where 2>&1; echo "status $?")
            case $action in
                default) expect="status 141" ;;   # killed by SIGPIPE (128 + 13)
                *) expect="Broken pipe" ;;
            esac
            if ! printf '%s\n' "$want" | grep -q "$expect"; then
                echo "without greenrun, $fd $action $where does not show '$expect':"; echo "$want"
                fail=1
            fi
            for opt in "" --threads; do
                got=$("$greenrun" $opt "$prog" $fd $action $where 2>&1; echo "status $?")
                if [ "$got" != "$want" ]; then
                    echo "greenrun $opt: $fd $action $where differs:"
                    echo "--- without"; echo "$want"; echo "--- with"; echo "$got"
                    fail=1
                fi
            done
        done
    done
done
[ $fail -eq 0 ] && echo "sigpipe: 32 cases behave as without libgreen-patch.so"
exit $fail
