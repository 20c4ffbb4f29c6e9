# shellcheck shell=bash
# tests/corpus/lib.sh — what the corpus tests share; sourced by each tests/corpus/<prog>.sh
# (one ctest test per program, label `corpus`), which bench/corpus.sh also runs (--bench).
#
# A corpus test runs an unmodified Debian program twice, on real threads and under
# greenrun (GREEN_FLAGS: --threads for threaded programs), against servers it starts,
# and compares the two runs: the same meaningful output, concurrency (N requests that
# each take LAT ms finish in well under N × LAT), the same exit status and error output
# after SIGINT/SIGTERM. The real-thread run is the reference (glibc's threads): when it
# fails a check the setup is wrong, not libgreen, and the report says so.
#
# This file owns:
#   - the temp dir $T (and HOME, so that no program reads or writes the user's files),
#     removed at exit unless GREEN_CORPUS_KEEP=1;
#   - the servers on 127.0.0.1: the delay server (corpus_delay), PostgreSQL, MariaDB;
#   - running a program (`launch`, `reap`, `run`, `interrupt`) under /usr/bin/time and a
#     watchdog;
#   - the verdicts (`check`, `same`, `stopped`, the detector) and the exit status
#     (`corpus_end`: 0, 1, or 77 when a program or server is not installed);
#   - the benchmark's rows (`bench_rows`, for bench/corpus.sh).
# Invariants: every process started here is stopped by the EXIT trap, whatever happens
# (helpers: BG_PIDS; runs: TIME_PID and their watchdogs; PostgreSQL: STOPS). Ports are
# the kernel's choice (the delay server) or free ones drawn at random from 20000-32767,
# below Linux's ephemeral range, so that tests run in parallel (ctest -j) and servers
# already on the machine do not collide. Programs start with the default action for
# SIGINT and SIGQUIT (a non-interactive shell's background jobs would ignore them).
#
# Environment: CORPUS_GREENRUN and CORPUS_DELAY (set by tests/corpus/CMakeLists.txt), and
#   GREENRUN              another tools/greenrun to test (another build's), instead
#   GREEN_CORPUS_TIMEOUT  seconds before a run counts as hung and is killed (10)
#   GREEN_CORPUS_DETECT=1 the pinning detector's check: green runs get GREEN_MONITOR_MS=100,
#                         and a green run that fails a check must have named the function
#                         that pins its hub (the PIN it was launched with) on stderr within
#                         1 s of pinning it (PIN_AT s after the launch)
#   GREEN_CORPUS_KEEP=1   keep $T (its path is printed) to look at the runs' files
set -u
export LC_ALL=C

GREENRUN=${GREENRUN:-${CORPUS_GREENRUN:-}}   # the caller's, else the build tree's
TMO=${GREEN_CORPUS_TIMEOUT:-10}
DETECT=${GREEN_CORPUS_DETECT:-0}
LAT=200              # ms: how long the delay server takes to answer, in every test
GREEN_FLAGS=(--threads)
PIN=""               # set by a test before a launch: what pinned (or pins) the hub (an ERE;
                     # "spin": a loop, no one function, so any report of the hub will do)
PIN_AT=0             # ... and when, in s after the launch (the detector has 1 s more)
NAME=${NAME:-$(basename "$0" .sh)}   # a test run with arguments may name itself first
BENCH=0
case " $* " in *" --bench "*) BENCH=1 ;; esac
BG_PIDS=()
STOPS=()
NFAIL=0
declare -A TIME_PID WD_PID SNAP_PID RSSW_PID PIN_OF PIN_WINDOW RC HUNG

T=$(mktemp -d "${TMPDIR:-/tmp}/green-corpus-$NAME.XXXXXX") || exit 2
chmod 755 "$T"       # the servers run as nobody when we are root
export HOME=$T/home
mkdir -p "$HOME"

corpus_cleanup() {
    local s p
    for p in "${TIME_PID[@]}"; do pkill -KILL -P "$p" 2>/dev/null; done
    for p in "${WD_PID[@]}"; do kill "$p" 2>/dev/null; done
    for s in "${STOPS[@]}"; do eval "$s" >/dev/null 2>&1; done
    for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    if [ "${GREEN_CORPUS_KEEP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap corpus_cleanup EXIT
trap 'exit 2' INT TERM HUP

# skip WHY: ctest's SKIP_RETURN_CODE; only for a program or server that is not installed
skip() { echo "SKIP: $*"; exit 77; }
# need PROG...: each on PATH (or a path)
need() {
    local p
    for p; do command -v "$p" >/dev/null 2>&1 || skip "$p is not installed (make test installs it)"; done
}
die() { echo "ERROR: $*" >&2; exit 2; }

# bg CMD...: a helper in the background (its pid is CMD's: bash execs it), killed at exit
bg() { "$@" & BG_PIDS+=($!); }

# PostgreSQL and MariaDB refuse to run as root; so, as root, servers run as nobody
if [ "$(id -u)" = 0 ]; then
    AS_USER=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
    own() { chown -R nobody:nogroup "$@"; }
else
    AS_USER=()
    own() { :; }
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a port nothing listens on and not handed out before in this test
USED_PORTS=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12768))
        case $USED_PORTS in *" $p "*) continue ;; esac
        port_open "$p" && continue
        USED_PORTS="$USED_PORTS$p "
        echo "$p"
        return
    done
}

# wait_port PORT: 0 once something accepts connections on it, 1 after 10 s
wait_port() {
    local i
    for i in $(seq 200); do port_open "$1" && return 0; sleep 0.05; done
    return 1
}

# ---- servers ---------------------------------------------------------------------------

# start_delay: the HTTP server that answers GET /delay/MS/NAME after MS ms with
# "hello /delay/MS/NAME"; sets DELAY_PORT and U, its base URL
start_delay() {
    [ -x "${CORPUS_DELAY:-}" ] || die "CORPUS_DELAY (the corpus_delay program) is not set"
    bg "$CORPUS_DELAY" >"$T/delay.port"
    local i
    for i in $(seq 200); do [ -s "$T/delay.port" ] && break; sleep 0.05; done
    DELAY_PORT=$(head -1 "$T/delay.port")
    [ -n "$DELAY_PORT" ] || die "the delay server did not start"
    U=http://127.0.0.1:$DELAY_PORT
}

# start_postgres: a fresh cluster in $T/pg (trust, superuser postgres); sets PG_PORT, PGBIN
start_postgres() {
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] || skip "PostgreSQL is not installed (make test installs it)"
    PG_PORT=$(free_port)
    mkdir -p "$T/pg" && own "$T/pg"
    "${AS_USER[@]}" "$PGBIN/initdb" -D "$T/pg/data" -A trust -U postgres >"$T/pg/initdb.log" 2>&1 ||
        { cat "$T/pg/initdb.log"; die "initdb failed"; }
    STOPS+=("${AS_USER[*]} $PGBIN/pg_ctl -D $T/pg/data -m immediate -w stop")
    "${AS_USER[@]}" "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/log" -w -o \
        "-k $T/pg -p $PG_PORT -h 127.0.0.1 -c fsync=off -c max_connections=400" start >/dev/null ||
        { cat "$T/pg/log"; die "PostgreSQL did not start"; }
}

# start_mariadb: a fresh datadir in $T/my, no grant tables, a database `corpus`; sets MY_PORT
start_mariadb() {
    need mariadbd mariadb-install-db mariadb
    MY_PORT=$(free_port)
    mkdir -p "$T/my" && own "$T/my"
    # its own tmpdir: bootstraps running at once in /tmp trip over each other's files
    "${AS_USER[@]}" mariadb-install-db --no-defaults --datadir="$T/my/data" --tmpdir="$T/my" --skip-test-db \
        >"$T/my/install.log" 2>&1 || { cat "$T/my/install.log"; die "mariadb-install-db failed"; }
    # back_log: the listen queue holds a burst of connections from a client's threads
    bg "${AS_USER[@]}" mariadbd --no-defaults --datadir="$T/my/data" --socket="$T/my/sock" \
        --pid-file="$T/my/pid" --tmpdir="$T/my" --port="$MY_PORT" --bind-address=127.0.0.1 \
        --skip-grant-tables --skip-log-bin --innodb-buffer-pool-size=32M \
        --max-connections=1000 --back-log=1000 >"$T/my/log" 2>&1
    wait_port "$MY_PORT" || { cat "$T/my/log"; die "mariadbd never listened"; }
    mariadb -h 127.0.0.1 -P "$MY_PORT" -u root -e "create database corpus" || die "MariaDB does not answer"
}

# ---- running a program -----------------------------------------------------------------

# launch MODE RUN CMD...: start CMD in the background, on real threads (MODE real) or
# under greenrun GREEN_FLAGS (MODE green), under /usr/bin/time and a watchdog that kills
# it after TMO s. Its files: $T/RUN.MODE.{out,err,time}. Sets PROG_PID, the program
# itself (greenrun execs it: /usr/bin/time's child is the program).
launch() {
    local mode=$1 run=$2; shift 2
    local base=$T/$run.$mode pre=() envs=()
    if [ "$mode" = green ]; then
        [ -x "$GREENRUN" ] || die "GREENRUN is not set"
        pre=("$GREENRUN" "${GREEN_FLAGS[@]}")
        [ "$DETECT" = 1 ] && envs=(GREEN_MONITOR_MS=100)
    fi
    rm -f "$base".*
    PIN_OF[$run.$mode]=$PIN PIN_WINDOW[$run.$mode]=$((PIN_AT + 1))
    env --default-signal=INT,QUIT "${envs[@]}" /usr/bin/time -o "$base.time" -f '%e %M' \
        "${pre[@]}" "$@" >"$base.out" 2>"$base.err" </dev/null &
    local tp=$! i
    TIME_PID[$base]=$tp
    PROG_PID=""
    for i in $(seq 200); do
        PROG_PID=$(pgrep -P "$tp" | head -1)
        [ -n "$PROG_PID" ] && break
        kill -0 "$tp" 2>/dev/null || break
        sleep 0.01
    done
    # the benchmark's exact peak RSS: the program's smaps_rollup sampled (rss_watch.c)
    if [ "$BENCH" = 1 ] && [ -n "$PROG_PID" ] && [ -x "${CORPUS_RSS_WATCH:-}" ]; then
        "$CORPUS_RSS_WATCH" "$PROG_PID" >"$base.rssw" 2>/dev/null </dev/null &
        RSSW_PID[$base]=$!
    fi
    (
        trap 'kill $s 2>/dev/null; exit 0' TERM
        sleep "$TMO" & s=$!
        wait $s
        echo hung >"$base.hung"
        pkill -KILL -P "$tp"
    ) </dev/null >/dev/null 2>&1 &
    WD_PID[$base]=$!
    # the detector's window: what the program wrote on stderr by 1 s after it pinned
    if [ "$mode" = green ] && [ "$DETECT" = 1 ]; then
        bg bash -c "sleep $((PIN_AT + 1)); cp '$base.err' '$base.err1s'"
        SNAP_PID[$run.$mode]=$!
    fi
}

# reap MODE RUN: wait for a launched program; sets rc (128+N when killed by signal N),
# hung (1: the watchdog killed it), wall (s), rss (peak, KiB: getrusage's), rssx (peak,
# KiB, sampled exactly; --bench only, else 0), out and err (its files)
reap() {
    local base=$T/$2.$1
    wait "${TIME_PID[$base]}"
    rc=$?
    rssx=0
    if [ -n "${RSSW_PID[$base]:-}" ]; then
        wait "${RSSW_PID[$base]}" 2>/dev/null
        rssx=$(cat "$base.rssw" 2>/dev/null)
        unset "RSSW_PID[$base]"
    fi
    kill "${WD_PID[$base]}" 2>/dev/null
    wait "${WD_PID[$base]}" 2>/dev/null
    unset "TIME_PID[$base]" "WD_PID[$base]"
    hung=0
    [ -f "$base.hung" ] && hung=1
    wall=0 rss=0
    read -r wall rss < <(tail -1 "$base.time")
    out=$base.out err=$base.err
    RC[$2.$1]=$rc HUNG[$2.$1]=$hung
    LAST_RUN=$2.$1
}

# run MODE RUN CMD...: launch and reap
run() { launch "$@"; reap "$1" "$2"; }

# signal SECS SIG: send SIG to the program just launched, SECS s from now
signal() { sleep "$1"; [ -n "$PROG_PID" ] && kill -"$2" "$PROG_PID" 2>/dev/null; }

# interrupt MODE RUN SECS SIG CMD...: launch CMD, send it SIG SECS s later, reap it. The
# real-thread run is the reference: when it hangs, that is the program's own race (siege's
# pthread_cancel of its users hung one CI run on real threads, Dec 2026), so it runs
# again, at most twice more, and the report says so; a green run is never run again.
interrupt() {
    local mode=$1 run=$2 secs=$3 sig=$4 try
    shift 4
    for try in 1 2 3; do
        launch "$mode" "$run" "$@"
        signal "$secs" "$sig"
        reap "$mode" "$run"
        { [ "$mode" = real ] && [ "$hung" = 1 ] && [ "$try" -lt 3 ]; } || break
        row real "$run: hung, run again" INFO "the reference's own failure (try $try of 3)"
    done
}

# ms_since T0: milliseconds since T0, an $EPOCHREALTIME
ms_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
# secs MS: MS in seconds, as /usr/bin/time prints them
secs() { awk -v ms="$1" 'BEGIN { printf "%.2f", ms / 1000 }'; }
# wall_ms: the last reaped run's wall time in ms
wall_ms() { awk -v w="$wall" 'BEGIN { printf "%d", w * 1000 }'; }
# conc MODE N MS OK: the concurrency check: N requests that each take LAT ms, made at
# once, took MS ms (OK: 0 when they were all answered), well under the N × LAT they would
# take one after the other. Limit: half of that (at least 4 × LAT), or the real-thread
# run's time plus 2 × LAT when a loaded machine slowed both, but never over 3/4 of it: a
# functional check with a wide margin, not a benchmark. The real-thread run's limit is
# 3/4 of N × LAT.
conc() {
    local mode=$1 n=$2 ms=$3 lim serial=$(($2 * LAT))
    if [ "$mode" = real ]; then
        lim=$((serial * 3 / 4)) CONC_REAL=$ms
    else
        lim=$((serial / 2))
        ((lim >= 4 * LAT)) || lim=$((4 * LAT))
        ((lim >= ${CONC_REAL:-0} + 2 * LAT)) || lim=$((CONC_REAL + 2 * LAT))
        ((lim <= serial * 3 / 4)) || lim=$((serial * 3 / 4))
    fi
    [ "$4" = 0 ] && [ "$ms" -lt "$lim" ]
    check "$mode" "concurrent ($n x $LAT ms)" $? "$ms ms (limit $lim)"
}

# errors FILE: the error output, less blank lines and the monitor's reports (diagnostics
# that GREEN_CORPUS_DETECT asks for, not the program's)
errors() { sed -e '/^libgreen monitor:/d' -e '/^    #[0-9]/d' -e '/^[[:space:]]*$/d' "$1" 2>/dev/null; }

# ---- verdicts ---------------------------------------------------------------------------

# row MODE WHAT VERDICT DETAIL: one line of the report
row() { printf '%-15s %-5s %-30s %-4s %s\n' "$NAME" "$1" "$2" "$3" "$4"; }

# show FILE [LINES]: the start of a run's file, indented, for a failure's report
show() { [ -s "$1" ] && { echo "    --- $(basename "$1"):"; head -"${2:-12}" "$1" | cut -c1-200 | sed 's/^/    /'; }; return 0; }

# check MODE WHAT STATUS [DETAIL] [FILE...]: PASS when STATUS is 0, HANG when the last run
# was killed by the watchdog, FAIL otherwise; on failure the FILEs' first lines follow. A
# failure of the real-thread run is the setup's; a green run's goes to the detector.
check() {
    local mode=$1 what=$2 v=FAIL f
    if [ "$3" = 0 ]; then v=PASS; elif [ "${hung:-0}" = 1 ]; then v=HANG; fi
    row "$mode" "$what" "$v" "${4:-}"
    [ "$v" = PASS ] && return 0
    NFAIL=$((NFAIL + 1))
    if [ $# -gt 4 ]; then shift 4; else set --; fi
    for f; do show "$f"; done
    if [ "$mode" = real ]; then
        echo "    ^ the real-thread run failed: the test's setup or machine is wrong, not libgreen"
    else
        detector
    fi
    return 1
}

# same RUN WHAT [NORMALISER] [EXT]: the outputs of RUN's two runs ($T/RUN.MODE.EXT, "out"
# by default; a server's test puts its client's output in .drive), put through the
# normaliser (a command filtering stdin; cat by default), are the same
same() {
    local run=$1 what=$2 norm=${3:-cat} ext=${4:-out}
    LAST_RUN=$run.green hung=${HUNG[$run.green]:-0}
    if diff <($norm <"$T/$run.real.$ext") <($norm <"$T/$run.green.$ext") >"$T/diff" 2>&1; then
        check green "$what" 0 "the same as on real threads"
    else
        check green "$what" 1 "differs from the real-thread run (< real, > green)" "$T/diff"
    fi
}

# stopped RUN WHAT WANT_RC: after a signal (or the program's own end), the real-thread
# run ended with WANT_RC and no error output, and the green run ended exactly as it did
stopped() {
    local run=$1 what=$2 want=$3 r=$T/$1.real g=$T/$1.green
    rc=${RC[$run.real]} hung=${HUNG[$run.real]}
    [ "$rc" = "$want" ] && [ -z "$(errors "$r.err")" ]
    check real "$what" $? "exit $rc (want $want), $(errors "$r.err" | wc -l) error line(s)" "$r.err"
    rc=${RC[$run.green]} hung=${HUNG[$run.green]} LAST_RUN=$run.green
    [ "$rc" = "${RC[$run.real]}" ] && diff <(errors "$r.err") <(errors "$g.err") >/dev/null
    check green "$what" $? "exit $rc$([ "$hung" = 1 ] && echo " (hung: killed after ${TMO} s)"), $(errors "$g.err" | wc -l) error line(s); real threads: exit ${RC[$run.real]}, $(errors "$r.err" | wc -l)" \
        "$g.err"
}

# detector: with GREEN_CORPUS_DETECT=1, a green run that failed must have been named by
# the pinning detector within 1 s of pinning its hub, with the function its PIN names
# (once per run; a run launched without PIN blocks nowhere known: the row only informs)
DETECTED=" "
detector() {
    [ "$DETECT" = 1 ] || return 0
    local run=$LAST_RUN pin=${PIN_OF[$LAST_RUN]:-} snap=$T/$LAST_RUN.err1s
    case $DETECTED in *" $run "*) return 0 ;; esac
    DETECTED="$DETECTED$run "
    wait "${SNAP_PID[$run]}" 2>/dev/null  # a run that ended early: its window still closes
    local reports; reports=$(grep -c '^libgreen monitor:' "$snap" 2>/dev/null)
    if [ -z "$pin" ]; then
        row green "detector (${run%.green})" "--" "no known pinning here; ${reports:-0} monitor report(s) in 1 s"
    elif [ "$pin" = spin ] && [ "${reports:-0}" -gt 0 ]; then
        row green "detector (${run%.green})" PASS "reported the spinning green thread within 1 s (by ${PIN_WINDOW[$run]} s)"
    elif [ "${reports:-0}" -gt 0 ] && grep -qE "(^|[^A-Za-z0-9_])_*($pin)([^A-Za-z0-9_]|$)" "$snap"; then
        row green "detector (${run%.green})" PASS "named $pin within 1 s (by ${PIN_WINDOW[$run]} s)"
    else
        row green "detector (${run%.green})" FAIL "did not name $pin within 1 s (by ${PIN_WINDOW[$run]} s)"
        show "$snap"
        NFAIL=$((NFAIL + 1))
    fi
}

corpus_end() {
    if [ "$NFAIL" = 0 ]; then echo "$NAME: every check passed"; exit 0; fi
    echo "$NAME: $NFAIL check(s) failed"
    exit 1
}

# ---- the benchmark (bench/corpus.sh) ---------------------------------------------------

# bench_rows LOAD C: with --bench, run `LOAD MODE C'` for C' = C × each factor
# (CORPUS_FACTORS, "1 10" by default) on real threads and under greenrun, print one line
# per run (name mode concurrency ok wall_s rss_kib sampled_rss_kib rc|hung first-error-line)
# and exit.
# LOAD runs the program and sets ok (0 when its output was right), and bwall when the
# wall time is not the program run's own (a server's: its client's). A run that worked
# is made 3 times and its median wall time and RSSs printed (as bench/run.sh does).
bench_rows() {
    [ "$BENCH" = 1 ] || return 0
    local load=$1 c=$2 f mode e i walls rsss rssxs
    for f in ${CORPUS_FACTORS:-1 10}; do
        for mode in real green; do
            walls="" rsss="" rssxs=""
            for i in 1 2 3; do
                bwall="" ok=1
                "$load" "$mode" $((c * f))
                walls="$walls ${bwall:-$wall}" rsss="$rsss $rss" rssxs="$rssxs ${rssx:-0}"
                [ "$ok" = 0 ] && [ "$hung" = 0 ] || break
            done
            e=$(errors "$err" | head -1 | tr -s ' \t' '  ' | cut -c1-100)
            printf '%s %s %s %s %s %s %s %s %s\n' "$NAME" "$mode" $((c * f)) "$ok" "$(median $walls)" \
                "$(median $rsss)" "$(median $rssxs)" "$([ "$hung" = 1 ] && echo hung || echo "$rc")" "${e:--}"
        done
    done
    exit 0
}
# median X...: the middle value (the first, when fewer than 3)
median() { [ $# -lt 3 ] && { echo "$1"; return; }; printf '%s\n' "$@" | sort -g | sed -n 2p; }
