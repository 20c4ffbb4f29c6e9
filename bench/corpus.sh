#!/usr/bin/env bash
# bench/corpus.sh — the corpus of real programs (tests/corpus/) for figures: for each
# program, wall time and peak RSS on real threads and under greenrun, at its test's
# concurrency and at ten times it, printed as a markdown table with ratios.
#
#   bash bench/corpus.sh [BUILD_DIR]     (`make bench-corpus`; bench/run.sh's section R)
#
# BUILD_DIR (default build-release) holds greenrun, libgreen-patch.so and
# tests/corpus/corpus_delay. Each program is its test script run with --bench
# (tests/corpus/lib.sh's bench_rows): the same servers, the same load as the test, in
# fresh processes. Wall time is the program's own (/usr/bin/time) for a client, the
# client's for a server (tinyproxy, memcached, nginx: curl or the test's own client);
# peak RSS is always the program's. Nothing is judged here: figures and ratios only. A
# run that hangs (killed after GREEN_CORPUS_TIMEOUT s) or fails is shown as such.
#
# Environment:
#   CORPUS_FACTORS        the multiples of each test's concurrency (default "1 10")
#   CORPUS_PROGRAMS       the programs (default: all, in the tests' order)
#   GREEN_CORPUS_TIMEOUT  seconds before a run counts as hung (default 10)
set -uo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_ARG=${1:-build-release}
if [[ $BUILD_ARG = /* ]]; then BUILD=$BUILD_ARG
elif [[ -d $BUILD_ARG ]]; then BUILD=$(cd "$BUILD_ARG" && pwd)
else BUILD=$ROOT/$BUILD_ARG; fi
export CORPUS_GREENRUN=$BUILD/greenrun CORPUS_DELAY=$BUILD/tests/corpus/corpus_delay
export CORPUS_RSS_WATCH=$BUILD/tests/corpus/rss_watch
for f in "$CORPUS_GREENRUN" "$CORPUS_DELAY" "$CORPUS_RSS_WATCH"; do
  [[ -x $f ]] || { echo "corpus.sh: $f is missing; build first (make bench-corpus does)" >&2; exit 1; }
done
unset GREENRUN GREEN_CORPUS_DETECT
read -r -a PROGRAMS <<<"${CORPUS_PROGRAMS:-siege tinyproxy pgbench sysbench_pgsql sysbench_mysql mariadb_slap memcached nginx curl redis_benchmark}"
T_START=$(date +%s)

# what each program is, and what its concurrency counts
declare -A WHAT=(
  [siege]="siege: users (threads), one request each; sigwait thread"
  [tinyproxy]="tinyproxy: concurrent proxied requests (a thread each)"
  [pgbench]="pgbench: clients, on clients/2 threads (libpq)"
  [sysbench_pgsql]="sysbench, pgsql: threads, one query each (libpq)"
  [sysbench_mysql]="sysbench, mysql: threads, one query each (libmariadb)"
  [mariadb_slap]="mariadb-slap: clients (threads), one query each"
  [memcached]="memcached: waiting connections, on connections/2 worker threads"
  [nginx]="nginx: concurrent proxied requests (its epoll loop; a thread pool)"
  [curl]="curl -Z: parallel transfers (one thread throughout: curl resolves localhost itself)"
  [redis_benchmark]="redis-benchmark --threads 4: clients (SET+GET, 100 each; 4 event-loop threads)")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f×", b / a; else print "—" }'; }
fmt_s() { awk -v v="$1" 'BEGIN { if (v < 10) printf "%.2f s", v; else printf "%.1f s", v }'; }
fmt_kib() { awk -v v="$1" 'BEGIN { if (v < 1024) printf "%.0f KiB", v; else printf "%.1f MiB", v / 1024 }'; }

# cell RC OK VALUE: the wall time, or what went wrong instead; a server that did its
# work and then hung at SIGTERM (or a client killed when done) still has its figure
cell() {
  local tmo=${GREEN_CORPUS_TIMEOUT:-10}
  if [[ $2 != 0 ]]; then
    if [[ $1 == hung ]]; then echo "**hung** (killed after $tmo s)"
    elif [[ $1 == 0 ]]; then echo "**wrong output** (exit 0)"
    else echo "**failed** (exit $1)"; fi
  elif [[ $1 == hung ]]; then echo "$(fmt_s "$3"), then **hung** at SIGTERM"
  else fmt_s "$3"; fi
}

echo "## R. Real programs under greenrun (the corpus, issue 12)"
echo
echo "Unmodified Debian programs, each against servers started for it on 127.0.0.1 (a server"
echo "that answers every HTTP request after 200 ms; PostgreSQL's pg_sleep(0.2) and MariaDB's"
echo "SLEEP(0.2)), the same load on real threads and under \`greenrun\` (\`--threads\`): the"
echo "corpus tests' own (\`ctest -L corpus\`, tests/corpus/), at their concurrency times"
echo "$(sed 's/ /, /g' <<<"${CORPUS_FACTORS:-1 10}"). Wall time: the program's (a server's: its client's, for"
echo "all the requests); peak RSS: the program's, twice — getrusage's (/usr/bin/time), which since"
echo "Linux 6.2 reads per-CPU counters without their pending deltas (up to 31 pages per CPU"
echo "and counter: a few hundred KiB off either way), and the largest Rss of its"
echo "/proc/PID/smaps_rollup sampled every 2 ms (exact at each sample; tests/corpus/rss_watch.c);"
echo "each the median of 3 runs (one when it hangs or fails). Ratios are greenrun / real"
echo "threads, where both runs worked."
echo "Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores (other work on"
echo "the machine skews wall times)."
echo
echo "| program: what the concurrency counts | concurrency | wall, real threads | wall, greenrun | ratio | peak RSS, real threads | peak RSS, greenrun | ratio | sampled peak RSS, real threads | sampled, greenrun | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
notes=()
for p in "${PROGRAMS[@]}"; do
  script=$p args=()
  case $p in sysbench_*) script=sysbench args=("${p#sysbench_}") ;; esac
  out=$(bash "$ROOT/tests/corpus/$script.sh" "${args[@]}" --bench 2>&1)
  st=$?
  if ((st == 77)); then
    echo "| ${WHAT[$p]} | — | not installed: $(sed -n 's/^SKIP: //p' <<<"$out" | head -1) | | | | | | | | |"
    continue
  elif ((st != 0)); then
    echo "| ${WHAT[$p]} | — | **setup failed** (exit $st): $(tail -1 <<<"$out" | cut -c1-100) | | | | | | | | |"
    continue
  fi
  # lines: name mode concurrency ok wall rss sampled-rss rc first-error-line
  declare -A W=() R=() X=() OK=() RCS=() ERR=()
  cs=()
  while read -r name mode c ok wall rss rssx rc errline; do
    [[ $name == "$p" ]] || continue
    [[ $mode == real ]] && cs+=("$c")
    W[$mode,$c]=$wall R[$mode,$c]=$rss X[$mode,$c]=$rssx OK[$mode,$c]=$ok RCS[$mode,$c]=$rc ERR[$mode,$c]=$errline
  done <<<"$out"
  for c in "${cs[@]}"; do
    wr=$(cell "${RCS[real,$c]}" "${OK[real,$c]}" "${W[real,$c]}")
    wg=$(cell "${RCS[green,$c]}" "${OK[green,$c]}" "${W[green,$c]}")
    rr=$(fmt_kib "${R[real,$c]}") rg=$(fmt_kib "${R[green,$c]}")
    xr=$(fmt_kib "${X[real,$c]}") xg=$(fmt_kib "${X[green,$c]}")
    rw="—" rm="—" xm="—"
    if [[ ${OK[real,$c]} == 0 && ${OK[green,$c]} == 0 ]]; then
      rw=$(ratio "${W[real,$c]}" "${W[green,$c]}")
      # a server that hung at SIGTERM did its work: its peak RSS still compares
      rm=$(ratio "${R[real,$c]}" "${R[green,$c]}")
      xm=$(ratio "${X[real,$c]}" "${X[green,$c]}")
    fi
    echo "| ${WHAT[$p]} | $c | $wr | $wg | $rw | $rr | $rg | $rm | $xr | $xg | $xm |"
    for m in real green; do
      [[ ${ERR[$m,$c]} != - && ${OK[$m,$c]} != 0 ]] && notes+=("$p at $c, $m: ${ERR[$m,$c]}")
    done
  done
  unset W R X OK RCS ERR
done
echo
if ((${#notes[@]})); then
  echo "First error line of each failed run:"
  echo
  printf -- '- %s\n' "${notes[@]}"
  echo
fi
echo "_bench/corpus.sh took $(($(date +%s) - T_START)) s._"
