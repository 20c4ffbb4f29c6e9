#!/bin/sh
# jemalloc_test.sh GREENRUN THREADS_COUNT — a program whose malloc is jemalloc (redis,
# and any program linked with it or given it with LD_PRELOAD) under `greenrun --threads`.
# jemalloc guards its arenas with pthread_mutex_trylock, which the patch library wraps;
# the first call made the hub, whose allocation called jemalloc, whose trylock made the
# hub again, until the stack overflowed (SIGSEGV at start). Exit 77 (skipped) without
# libjemalloc.so.2.
greenrun=$1 prog=$2
lib=$(ls /usr/lib/*/libjemalloc.so.2 /usr/lib/libjemalloc.so.2 2>/dev/null | head -1)
[ -n "$lib" ] || { echo "libjemalloc.so.2 is not installed (make test installs libjemalloc2)"; exit 77; }
out=$(LD_PRELOAD=$lib timeout -s KILL 60 "$greenrun" --threads "$prog" 10000 2>&1)
rc=$?
echo "$out"
[ $rc -eq 0 ] || { echo "exit $rc"; exit 1; }
echo "$out" | grep -q "threads=10000 count=10000 " || exit 1
