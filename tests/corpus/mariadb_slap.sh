#!/bin/bash
# mariadb_slap.sh — mariadb-slap, MariaDB's load emulator: a thread per client
# (libmariadb's blocking protocol on each). Under `greenrun --threads`, 32 clients each
# run SELECT SLEEP(0.2) at once, in about one query's time; SIGINT kills it as it
# kills it on real threads (mariadb-slap does not catch it: exit 130).
. "$(dirname "$0")/lib.sh"
need mariadb-slap
start_mariadb
SLAP=(mariadb-slap -h 127.0.0.1 -P "$MY_PORT" -u root --create-schema=corpus --query="SELECT SLEEP($LAT / 1000.0)")

# load MODE C: C clients, one query each
load() {
    run "$1" "slap$2" "${SLAP[@]}" --concurrency="$2" --iterations=1 --number-of-queries="$2"
    grep -q "Number of clients running queries: $2\$" "$out"
    ok=$?
}
bench_rows load 32

facts() { grep -v 'number of seconds'; }

for mode in real green; do
    load $mode 32
    check $mode "32 queries" $ok "" "$out" "$err"
    conc $mode 32 "$(wall_ms)" $ok

    interrupt $mode int 1 INT "${SLAP[@]}" --concurrency=4 --iterations=1000 --number-of-queries=4
done
same slap32 "report" facts
stopped int "SIGINT at 1 s" 130
corpus_end
