#!/bin/bash
# siege.sh — siege, a threaded HTTP load tester: a thread per simulated user, a signal
# thread in sigwait() that, on SIGINT/SIGTERM, pthread_cancel()s the users blocked in
# their sockets and prints the statistics. Runs under `greenrun --threads` against the
# delay server: 8 users, one request each, take about one answer's time; SIGINT
# during a 30 s run ends it with the statistics and exit 0.
. "$(dirname "$0")/lib.sh"
need siege
start_delay
siege -C >/dev/null 2>&1 # writes ~/.siege/siege.conf once, so that runs print nothing else
PIN="sigwait|sigtimedwait"  # what pinned the hub before the sigwait wrappers (Dec 2026): if it ever fails again, the detector must name it

# load MODE C: C users, one request each
load() {
    run "$1" "siege$2" siege -c "$2" -r 1 -b "$U/delay/$LAT/siege"
    grep -q "\"successful_transactions\":[[:space:]]*$2," "$out"
    ok=$?
}
bench_rows load 8

# the facts of the statistics that do not depend on timing
facts() { grep -E '"(transactions|availability|successful_transactions|failed_transactions|data_transferred)"' | tr -d ' \t'; }
# after SIGINT the counts depend on timing too: only whether there were any
facts_int() { facts | sed -E 's/":[1-9][0-9]*,/":N,/'; }

for mode in real green; do
    load $mode 8
    check $mode "8 requests answered" $ok "" "$out" "$err"
    conc $mode 8 "$(wall_ms)" $ok

    interrupt $mode int 1 INT siege -c 4 -t 30s -b "$U/delay/$LAT/int"
done
same siege8 "statistics" facts
stopped int "SIGINT at 1 s" 0
same int "statistics after SIGINT" facts_int
corpus_end
