#!/bin/bash
# sysbench.sh pgsql|mysql — sysbench, a threaded database benchmark (LuaJIT scripts;
# libpq or libmariadb in each worker thread), with a report thread that sleeps in
# usleep() and is pthread_cancel()led at the end. Under `greenrun --threads`, 16
# threads each run one 200 ms query (pg_sleep / SLEEP) in about one query's time; a
# --time=1 run with --report-interval=1 stops by itself with exit 0.
DRIVER=${1:-}
case $DRIVER in pgsql | mysql) ;; *) echo "usage: sysbench.sh pgsql|mysql [--bench]" >&2; exit 2 ;; esac
NAME=sysbench_$DRIVER
. "$(dirname "$0")/lib.sh"
need sysbench
if [ "$DRIVER" = pgsql ]; then
    start_postgres
    DB=(--db-driver=pgsql --pgsql-host=127.0.0.1 --pgsql-port="$PG_PORT" --pgsql-user=postgres --pgsql-db=postgres)
    SLEEP="SELECT pg_sleep($LAT / 1000.0)"
else
    start_mariadb
    DB=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$MY_PORT" --mysql-user=root --mysql-db=corpus)
    SLEEP="SELECT SLEEP($LAT / 1000.0)"
fi
cat >"$T/sleep.lua" <<LUA
function thread_init() drv = sysbench.sql.driver(); con = drv:connect() end
function event() con:query("$SLEEP") end
function thread_done() con:disconnect() end
LUA

# load MODE C: C threads, C events (one query each)
load() {
    run "$1" "sysbench$2" sysbench "$T/sleep.lua" "${DB[@]}" --threads="$2" --events="$2" --time=0 run
    grep -q "total number of events: *$2\$" "$out"
    ok=$?
}
bench_rows load 16

# what does not depend on timing: the settings and the counts (not the rates, times,
# latencies, or how the events fell on the threads)
facts() {
    grep -vE '^ *(min|avg|max|95th percentile|sum|events \(avg/stddev\)|execution time \(avg/stddev\)|total time):' |
        grep -vE '^\[ [0-9]+s \]|^Initializing random' | sed -E 's/ +\([0-9.]+ per sec\.\)//'
}
# a timed run's counts depend on timing too: its report's shape
shape() { facts | sed -E 's/[0-9]+/N/g'; }

for mode in real green; do
    PIN="" PIN_AT=0
    load $mode 16
    check $mode "16 queries" $ok "" "$out" "$err"
    conc $mode 16 "$(wall_ms)" $ok

    # the report thread, cancelled when --time ends, spins: its usleep() fails at once,
    # over and over, so the monitor catches it anywhere in its loop (lead, Dec 2026)
    PIN=spin PIN_AT=1
    run $mode report sysbench "$T/sleep.lua" "${DB[@]}" --threads=4 --time=1 --report-interval=1 run
done
same sysbench16 "report" facts
stopped report "--time=1, report thread" 0
same report "report of the --time=1 run" shape
corpus_end
