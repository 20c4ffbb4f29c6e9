#!/bin/sh
# sigintr_test.sh GREENRUN SIG_INTR MODE — signal handlers interrupt blocking calls under
# libgreen-patch.so as the kernel does: tests/progs/sig_intr.c, in one MODE, prints the
# same on real threads, under `greenrun` and under `greenrun --threads`. A call that is
# never interrupted ends the run with SIGALRM (the program's own alarm), or with
# timeout(1) if even that cannot come; either way the outputs differ.
set -e
greenrun=$1 prog=$2 mode=$3

run() {
    timeout -s KILL 90 "$@" "$prog" "$mode" 2>&1 || echo "exit status $?"
}

want=$(run)
echo "--- real threads"; echo "$want"
case $want in
    ""|*FAIL*) echo "the program fails on real threads"; exit 1 ;;
esac
for how in "" --threads; do
    got=$(run "$greenrun" $how)
    echo "--- greenrun $how"; echo "$got"
    if [ "$got" != "$want" ]; then
        echo "greenrun $how changed the output"
        exit 1
    fi
done
