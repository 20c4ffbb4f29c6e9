#!/bin/sh
# monitor_malloc_test.sh GREENRUN BUSY_MALLOC — libgreen's monitor signals a thread that
# holds its hub to see where it is. tests/progs/busy_malloc.c holds it inside malloc, so
# the signal most often lands with malloc's lock held; the handler must then reach
# nothing that allocates (it unwinds with libunwind, which reads a pipe that the patch
# library wraps: its fd table was allocated there, and the process hung in 14 of 20
# runs). Twenty short runs, each must end (exit 0) within 20 s.
greenrun=$1 prog=$2
i=0
while [ $i -lt 20 ]; do
    i=$((i + 1))
    GREEN_MONITOR_MS=10 timeout -s KILL 20 "$greenrun" --threads "$prog" 200 >/dev/null 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "run $i: exit $rc (137: hung, killed after 20 s)"
        exit 1
    fi
done
echo "20 runs, each interrupted in malloc by the monitor: all ended"
