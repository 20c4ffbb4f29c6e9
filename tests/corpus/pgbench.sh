#!/bin/bash
# pgbench.sh — PostgreSQL's pgbench with -j: worker threads (libpq, each polling its
# clients' sockets with select/ppoll) that start together at a pthread barrier. Under
# `greenrun --threads`, 8 clients on 4 threads each run SELECT pg_sleep(0.2) once, in
# about one query's time; SIGINT kills it as it kills it on real threads (pgbench does
# not catch it: exit 130).
. "$(dirname "$0")/lib.sh"
start_postgres
PGBENCH=$PGBIN/pgbench
[ -x "$PGBENCH" ] || skip "pgbench is not installed"
echo "SELECT pg_sleep($LAT / 1000.0);" >"$T/sleep.sql"
PIN="pthread_barrier_wait"  # what pinned the hub before green barriers (Dec 2026): if it ever fails again, the detector must name it
PGB=("$PGBENCH" -n -f "$T/sleep.sql" -h 127.0.0.1 -p "$PG_PORT" -U postgres)

# load MODE C: C clients on C/2 threads, one transaction each
load() {
    run "$1" "pgbench$2" "${PGB[@]}" -c "$2" -j $(($2 / 2)) -t 1 postgres
    grep -q "actually processed: $2/$2\$" "$out"
    ok=$?
}
bench_rows load 8

# what does not depend on timing: the settings and the counts
facts() { grep -vE '^(latency|initial connection time|tps) '; }

for mode in real green; do
    load $mode 8
    check $mode "8 transactions" $ok "" "$out" "$err"
    conc $mode 8 "$(wall_ms)" $ok

    interrupt $mode int 1 INT "${PGB[@]}" -c 4 -j 2 -T 30 postgres
done
same pgbench8 "report" facts
stopped int "SIGINT at 1 s" 130
corpus_end
