#!/usr/bin/env bash
# bench/run.sh — libgreen's benchmarks, printed as markdown tables.
#
#   bash bench/run.sh BUILD_DIR               everything (`make bench` runs it after a
#                                             Release build into build-release)
#   bash bench/run.sh BUILD_DIR --peers-only  only the talk's programs with Go and gevent
#                                             (`make bench-peers`; needs no C build)
#   bash bench/run.sh BUILD_DIR --net-only    only the network benchmarks (F, G:
#                                             bench/net.sh; `make bench-net`)
#
# Benchmarks are not tests: they print figures and ratios measured in this run and never
# judge them. Each data point of the talk's programs runs in a fresh process; a run
# shorter than 2 s is done 3 times and its median printed.
#
# Environment:
#   BENCH_FULL=1   lift the time caps (gevent at 1M: minutes; pthreads beyond 100K where
#                  the kernel would let them be created; E's pipeline with 1M integers)
#   BENCH_SIZES    the N of the talk's tables (default "100 1K 10K 100K 1M")
#   BENCH_PID_HEADROOM  pids bench_talk_pthreads leaves free below kernel.pid_max (1024)

set -uo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_ARG=${1:-build-release}
PEERS_ONLY=0 NET_ONLY=0
[[ ${2:-} == --peers-only ]] && PEERS_ONLY=1
[[ ${2:-} == --net-only ]] && NET_ONLY=1
if [[ $BUILD_ARG = /* ]]; then BUILD=$BUILD_ARG
elif [[ -d $BUILD_ARG ]]; then BUILD=$(cd "$BUILD_ARG" && pwd)
else BUILD=$ROOT/$BUILD_ARG; fi
BIN=$BUILD/bench
read -r -a SIZES <<<"${BENCH_SIZES:-100 1K 10K 100K 1M}"
FULL=${BENCH_FULL:-0}
T_START=$(date +%s)

if (( ! PEERS_ONLY )); then
  for b in bench_switch bench_spawn bench_talk bench_talk_pthreads bench_chan; do
    if [[ ! -x $BIN/$b ]]; then
      echo "run.sh: $BIN/$b is missing; build first (make bench does)" >&2
      exit 1
    fi
  done
fi

# ---------------------------------------------------------------- helpers

# kv LINE KEY: the value of KEY=value in a line of key=value pairs
kv() { awk -v k="$2" '{for (i = 1; i <= NF; i++) { j = index($i, "="); if (substr($i, 1, j - 1) == k) { print substr($i, j + 1); exit } } }' <<<"$1"; }
count() { awk -v s="$1" 'BEGIN { m = 1; if (s ~ /[kK]$/) m = 1e3; if (s ~ /[mM]$/) m = 1e6; printf "%d", s * m }'; }
commas() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }
fmt_ms() { awk -v v="$1" 'BEGIN { if (v < 1) printf "%.2f ms", v; else if (v < 10) printf "%.1f ms", v; else if (v < 1000) printf "%.0f ms", v; else printf "%.2f s", v / 1000 }'; }
fmt_kib() { awk -v v="$1" 'BEGIN { if (v < 1024) printf "%.0f KiB", v; else if (v < 1048576) printf "%.1f MiB", v / 1024; else printf "%.2f GiB", v / 1048576 }'; }
fmt_bytes() { awk -v v="$1" 'BEGIN { if (v < 1024) printf "%.0f B", v; else if (v < 1048576) printf "%.1f KiB", v / 1024; else printf "%.1f MiB", v / 1048576 }'; }
mem_avail_kb() { awk '/^MemAvailable:/ { print $2 }' /proc/meminfo; }
sysctl_val() { cat "/proc/sys/$1" 2>/dev/null || echo "?"; }

# run_point CMD...: one data point in a fresh process; prints its key=value line, or
# "error=..." when it crashed, hung (15 min) or printed nothing.
run_point() {
  local out rc
  out=$(timeout 900 "$@" 2>/tmp/bench-stderr.$$)
  rc=$?
  if (( rc == 124 )); then echo "error=timeout"
  elif (( rc != 0 )) || [[ -z $out ]]; then
    echo "error=exit-$rc $(head -c 200 /tmp/bench-stderr.$$ | tr '\n ' '__')"
  else echo "$out"; fi
  rm -f /tmp/bench-stderr.$$
}

# run_timed CMD...: like run_point; when the process took < 2 s (and created everything),
# twice more, and each numeric field is the median of the 3 runs.
run_timed() {
  local t0=$EPOCHREALTIME first
  first=$(run_point "$@")
  local t1=$EPOCHREALTIME
  if [[ -n $(kv "$first" fail)$(kv "$first" cap)$(kv "$first" error) ]] ||
     awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 2) }'; then
    echo "$first"; return
  fi
  { echo "$first"; run_point "$@"; run_point "$@"; } | awk '
    { for (i = 1; i <= NF; i++) { j = index($i, "="); k = substr($i, 1, j - 1); v = substr($i, j + 1)
        if (NR == 1) { key[++nk] = k; first[k] = v } val[k, NR] = v } }
    END {
      if (NR < 3) { for (i = 1; i <= nk; i++) printf "%s%s=%s", (i > 1 ? " " : ""), key[i], first[key[i]]; print ""; exit }
      for (i = 1; i <= nk; i++) {
        k = key[i]; a = val[k, 1]; b = val[k, 2]; c = val[k, 3]; out = a
        if (a ~ /^-?[0-9.]+$/ && b ~ /^-?[0-9.]+$/ && c ~ /^-?[0-9.]+$/) {
          a += 0; b += 0; c += 0
          if (a > b) { t = a; a = b; b = t } if (b > c) { t = b; b = c; c = t } if (a > b) { t = a; a = b; b = t }
          out = b
        }
        printf "%s%s=%s", (i > 1 ? " " : ""), k, out
      }
      print ""
    }'
}

# failure cell: "EAGAIN after 32,753 (vm.max_map_count)", "stopped at 31,638 (pid_max)"
fail_cell() {
  if [[ -n $(kv "$1" cap) ]]; then
    echo "stopped at $(commas "$(kv "$1" created)") (pid_max)"; return
  fi
  local c maps; c="$(kv "$1" fail) after $(commas "$(kv "$1" created)")"
  maps=$(kv "$1" fail_maps)
  if [[ -n $maps ]]; then
    if (( maps >= $(sysctl_val vm/max_map_count) - 8 )); then c="$c (vm.max_map_count)"
    else c="$c ($(commas "$(kv "$1" fail_threads)") threads alive)"; fi
  fi
  echo "$c"
}
error_cell() { echo "**failed: $(kv "$1" error)**"; }

# row LABEL CELL...: a markdown table row
row() { local label=$1; shift; printf '| %s |' "$label"; for c in "$@"; do printf ' %s |' "$c"; done; printf '\n'; }
header() {
  local first=$1; shift
  printf '| %s |' "$first"; for c in "$@"; do printf ' %s |' "$c"; done; printf '\n|---|'
  for c in "$@"; do printf -- '---:|'; done; printf '\n'
}

# ---------------------------------------------------------------- the machine

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[[ -z $cpu ]] && cpu=$(uname -m)
cores=$(nproc)
ram=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
os=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") || echo "?")
thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)
rev=$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "?")
btype=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
ccv=$("${cc:-cc}" -dumpfullversion 2>/dev/null || echo "?")
ctx=$(sed -n 's/^GREEN_CONTEXT:STRING=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)

echo "# libgreen benchmarks"
echo
echo "**Machine:** $cpu, $cores cores, $ram RAM, Linux $(uname -r) ($os); THP ${thp:-?};" \
  "kernel.pid_max $(sysctl_val kernel/pid_max), kernel.threads-max $(sysctl_val kernel/threads-max)," \
  "vm.max_map_count $(sysctl_val vm/max_map_count), vm.overcommit_memory $(sysctl_val vm/overcommit_memory)." \
  "libgreen $rev$([[ -n $btype ]] && echo ", ${btype} build, ${ctx:-asm} context switch, gcc $ccv")." \
  "Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews wall times)."
echo

# ---------------------------------------------------------------- A, B, C

if (( ! PEERS_ONLY && ! NET_ONLY )); then
  echo "## A. Context switches (wall clock, ns per switch, median of 3 runs of ~250 ms)"
  echo
  echo "Two green threads ping-pong with \`green_switch\` (no hub); the hub rows are two green"
  echo "threads spawned with \`green_spawn\`, each looping \`green_yield()\`. Switch counts are"
  echo "\`green_stats().switches\`. The pthread rows hand a token between two OS threads."
  echo
  out=$("$BIN/bench_switch" 2>&1) || out="**bench_switch failed (exit $?):** $out"
  echo "$out"
  echo

  echo "## B. A green thread's life (wall clock, ns per cycle, median of 3)"
  echo
  out=$("$BIN/bench_spawn" 2>&1) || out="**bench_spawn failed (exit $?):** $out"
  echo "$out"
  echo

  echo "## C. Instructions per switch (callgrind)"
  echo
  if command -v valgrind >/dev/null 2>&1; then
    N1=10000 N2=110000
    echo "Each row runs twice under \`valgrind --tool=callgrind\` with $N1 and $N2 round trips;"
    echo "instructions per switch = (Ir($N2) − Ir($N1)) / (switches($N2) − switches($N1)), so"
    echo "setup and teardown cancel out. User-space instructions only: swapcontext's"
    echo "\`rt_sigprocmask\` system call (most of its cost, see A) is not counted."
    echo
    header "switch" "instructions per switch" "Ir($N2) − Ir($N1)" "switches"
    declare -A CG_LABEL=(
      [dedicated]="libgreen \`green_switch\`, dedicated stacks"
      [shared]="libgreen \`green_switch\`, shared stack"
      [yield]="libgreen \`green_yield\` via the hub, dedicated (per switch)"
      [yield-shared]="libgreen \`green_yield\` via the hub, shared stack (per switch)"
      [ucontext]="glibc \`swapcontext\`")
    cgdir=$(mktemp -d)
    for m in dedicated shared yield yield-shared ucontext; do
      ir=() sw=()
      for n in $N1 $N2; do
        s=$(valgrind --tool=callgrind -q --callgrind-out-file="$cgdir/$m.$n" \
              "$BIN/bench_switch" count "$m" "$n" 2>"$cgdir/err")
        sw+=("$(kv "$s" switches)")
        ir+=("$(awk '/^(summary|totals):/ { print $2; exit }' "$cgdir/$m.$n" 2>/dev/null)")
      done
      if [[ -n ${ir[0]} && -n ${ir[1]} && -n ${sw[0]} && -n ${sw[1]} ]]; then
        d=$((ir[1] - ir[0])) ds=$((sw[1] - sw[0]))
        row "${CG_LABEL[$m]}" "$(awk -v d=$d -v s=$ds 'BEGIN { printf "%.1f", d / s }')" \
          "$(commas $d)" "$(commas $ds)"
      else
        row "${CG_LABEL[$m]}" "**failed:** $(head -c 200 "$cgdir/err" | tr '\n' ' ')" "" ""
      fi
    done
    rm -rf "$cgdir"
  else
    echo "valgrind is not installed: skipped (\`apt-get install valgrind\`, or \`make bench\`, installs it)."
  fi
  echo
fi

# ---------------------------------------------------------------- peers

GO_OK=0 PY=""
GO_NOTE="not installed (make bench-peers)"
PY_NOTE="not installed (make bench-peers)"
PEERS_BIN=$BIN/peers
if command -v go >/dev/null 2>&1; then
  mkdir -p "$PEERS_BIN"
  if [[ -z ${HOME:-} && -z ${GOCACHE:-} ]]; then export GOCACHE=$PEERS_BIN/go-cache GOPATH=$PEERS_BIN/gopath; fi
  if GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' go build -o "$PEERS_BIN/go_prog1" "$ROOT/bench/peers/prog1.go" 2>"$PEERS_BIN/build.log" &&
     GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' go build -o "$PEERS_BIN/go_prog2" "$ROOT/bench/peers/prog2.go" 2>>"$PEERS_BIN/build.log"; then
    GO_OK=1
    GO_NOTE=$(go version | awk '{ print $3 }')
  else
    GO_NOTE="build failed (see $PEERS_BIN/build.log)"
  fi
fi
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import gevent' 2>/dev/null; then
    PY=$p
    PY_NOTE="gevent $("$p" -c 'import gevent; print(gevent.__version__)'), Python $("$p" -c 'import platform; print(platform.python_version())')"
    break
  fi
done

# ---------------------------------------------------------------- F, G only

if (( NET_ONLY )); then
  source "$ROOT/bench/net.sh"
  echo "_bench/run.sh took $(( $(date +%s) - T_START )) s._"
  exit 0
fi

# ---------------------------------------------------------------- D: the talk's programs

NS=()
for s in "${SIZES[@]}"; do NS+=("$(count "$s")"); done
thread_limit=$(awk -v a="$(sysctl_val kernel/pid_max)" -v b="$(sysctl_val kernel/threads-max)" \
  -v c="$(sysctl_val vm/max_map_count)" 'BEGIN { m = a; if (b < m) m = b; if (c / 2 < m) m = c / 2; printf "%d", m }')

# may_run_pthreads N: run unless it would really create more than 100K OS threads
may_run_pthreads() { (( FULL == 1 || $1 <= 100000 || thread_limit <= 100000 )); }
# fits PREV_KB PREV_N N: would ~PREV_KB * N / PREV_N stay under 60% of MemAvailable?
fits() { awk -v p="$1" -v pn="$2" -v n="$3" -v a="$(mem_avail_kb)" 'BEGIN { exit !(p * n / pn < 0.6 * a) }'; }

echo "## D. The talk's programs"
echo
echo "Prog 1: N threads each sleep 200 ms; wall time from the first spawn to the last join."
echo "Prog 2: N threads asleep (90 s, as in the talk); once all of them sleep (plus 100 ms),"
echo "VmRSS and VmSize from /proc/self/status; then all are killed and joined. Every cell is"
echo "a fresh process; where a process takes under 2 s, each figure is the median of 3 runs."
echo "Rows marked *talk* are the talk's own figures (Python threads and gevent on the"
echo "speaker's machine, not measured here)."
echo

declare -A P1 P2 PF   # results: P1[mode,N] = key=value line

# prog1 / prog2 runners per mode; they fill P1 / P2
run_mode() { # PROG MODE N -> line
  local prog=$1 mode=$2 n=$3
  local runner=run_timed
  case $mode in
    dedicated|shared) $runner "$BIN/bench_talk" "$prog" "$mode" "$n" ;;
    pthreads8M) $runner "$BIN/bench_talk_pthreads" "$prog" 8M "$n" ;;
    pthreads64K) $runner "$BIN/bench_talk_pthreads" "$prog" 64K "$n" ;;
    go) $runner "$PEERS_BIN/go_$prog" "$n" ;;
    gevent) $runner "$PY" "$ROOT/bench/peers/$prog.py" "$n" ;;
  esac
}

MODES=()
(( PEERS_ONLY )) || MODES+=(dedicated shared pthreads8M pthreads64K)
(( GO_OK )) && MODES+=(go)
[[ -n $PY ]] && MODES+=(gevent)

# skip reasons, per (prog, mode, N); empty = run it
skip_reason() { # PROG MODE N PREV_LINE PREV_N
  local prog=$1 mode=$2 n=$3 prev=$4 pn=$5
  if [[ $mode == pthreads* ]] && ! may_run_pthreads "$n"; then
    echo "capped: > 100K OS threads (BENCH_FULL=1)"; return
  fi
  if [[ $mode == gevent ]] && (( n > 100000 && FULL != 1 )); then
    echo "capped: minutes at 1M (BENCH_FULL=1)"; return
  fi
  if [[ -n $prev && -z $(kv "$prev" error)$(kv "$prev" fail)$(kv "$prev" cap) ]]; then
    local kb; if [[ $prog == prog1 ]]; then kb=$(kv "$prev" hwm_kb); else kb=$(kv "$prev" rss_kb); fi
    if [[ -n $kb ]] && ! fits "$kb" "$pn" "$n"; then
      echo "skipped: needs ~$(fmt_kib "$(awk -v p="$kb" -v pn="$pn" -v n="$n" 'BEGIN { print p * n / pn }')")"; return
    fi
  fi
}

collect() { # PROG ARRAY-NAME
  local prog=$1 mode n prev pn why
  for mode in "${MODES[@]}"; do
    prev="" pn=""
    for n in "${NS[@]}"; do
      why=$(skip_reason "$prog" "$mode" "$n" "$prev" "$pn")
      local line
      if [[ -n $why ]]; then line="skip=${why// /^}"; else line=$(run_mode "$prog" "$mode" "$n"); fi
      eval "$2[\$mode,\$n]=\$line"
      prev=$line pn=$n
    done
  done
}

# cell formatters
p1_cell() { # LINE
  local l=$1
  if [[ -n $(kv "$l" skip) ]]; then kv "$l" skip | tr '^' ' '; return; fi
  if [[ -n $(kv "$l" error) ]]; then error_cell "$l"; return; fi
  if [[ -n $(kv "$l" fail)$(kv "$l" cap) ]]; then echo "$(fail_cell "$l") ($(fmt_ms "$(kv "$l" ms)") for those)"; return; fi
  fmt_ms "$(kv "$l" ms)"
}
p1_cell_spawn() { # LINE: with the time spent spawning
  local l=$1 c; c=$(p1_cell "$l")
  if [[ -z $(kv "$l" skip)$(kv "$l" error)$(kv "$l" fail)$(kv "$l" cap) ]]; then c="$c (spawning $(fmt_ms "$(kv "$l" spawn_ms)"))"; fi
  echo "$c"
}
p2_cell() { # LINE WHAT(rss|per|vm|time)
  local l=$1 what=$2
  if [[ -n $(kv "$l" skip) ]]; then kv "$l" skip | tr '^' ' '; return; fi
  if [[ -n $(kv "$l" error) ]]; then error_cell "$l"; return; fi
  local c=""
  case $what in
    rss) c=$(fmt_kib "$(kv "$l" rss_kb)") ;;
    vm) c=$(fmt_kib "$(kv "$l" vm_kb)") ;;
    per) c=$(fmt_bytes "$(awk -v a="$(kv "$l" rss_kb)" -v b="$(kv "$l" rss0_kb)" -v n="$(kv "$l" created)" 'BEGIN { print (a - b) * 1024 / n }')") ;;
    time) c="$(fmt_ms "$(kv "$l" start_ms)") / $(fmt_ms "$(kv "$l" kill_ms)")" ;;
  esac
  [[ -n $(kv "$l" fail)$(kv "$l" cap) ]] && c="$(fail_cell "$l"): $c"
  echo "$c"
}

declare -A LABEL=(
  [dedicated]="libgreen, dedicated stacks (default attr)"
  [shared]="libgreen, shared stack (GREEN_STACK_SHARED)"
  [pthreads8M]="OS threads (pthreads), 8 MiB stacks"
  [pthreads64K]="OS threads (pthreads), 64 KiB stacks"
  [go]="Go goroutines ($GO_NOTE)"
  [gevent]="gevent greenlets ($PY_NOTE)")

absent_rows() { # [EXTRA-CELL...]: rows for the peers that are not installed
  local dashes=() _n
  for _n in "${NS[@]}"; do dashes+=("—"); done
  (( GO_OK )) || row "Go goroutines: $GO_NOTE" "${dashes[@]}" "$@"
  [[ -n $PY ]] || row "gevent greenlets: $PY_NOTE" "${dashes[@]}" "$@"
}

# talk_row LABEL "F100;F1K;F10K;F100K" [EXTRA-CELL]: a row of the talk's own figures
talk_row() {
  local n cells=() f
  IFS=';' read -r -a f <<<"$2"
  for n in "${NS[@]}"; do
    case $n in 100) cells+=("${f[0]}") ;; 1000) cells+=("${f[1]}") ;; 10000) cells+=("${f[2]}") ;;
      100000) cells+=("${f[3]}") ;; *) cells+=("—") ;; esac
  done
  row "$1" "${cells[@]}" "${@:3}"
}

# --- the page floor (first touch of N fresh pages), in the same run
if (( ! PEERS_ONLY )); then
  prevpf="" pnpf=""
  for n in "${NS[@]}"; do
    if [[ -n $prevpf && -z $(kv "$prevpf" error) ]] && ! fits "$(kv "$prevpf" rss_delta_kb)" "$pnpf" "$n"; then
      PF[$n]="skip=skipped:^not^enough^memory"
    else
      PF[$n]=$(run_point "$BIN/bench_talk" pagefloor "$n")
    fi
    prevpf=${PF[$n]} pnpf=$n
  done
fi

collect prog1 P1

NHEAD=()
for s in "${SIZES[@]}"; do NHEAD+=("N = $s"); done

echo "### Prog 1: N threads each sleep 200 ms — wall time"
echo
header "threads" "${NHEAD[@]}"
talk_row "*talk*: Python threads" "207 ms;327 ms;2.55 s;25.42 s"
talk_row "*talk*: gevent greenlets" "204 ms;223 ms;421 ms;3.06 s"
for mode in "${MODES[@]}"; do
  cells=()
  for n in "${NS[@]}"; do
    if [[ $mode == dedicated ]]; then cells+=("$(p1_cell_spawn "${P1[$mode,$n]}")"); else cells+=("$(p1_cell "${P1[$mode,$n]}")"); fi
  done
  row "${LABEL[$mode]}" "${cells[@]}"
  if [[ $mode == dedicated ]]; then
    cells=()
    for n in "${NS[@]}"; do
      l=${PF[$n]}
      if [[ -n $(kv "$l" skip) ]]; then cells+=("$(kv "$l" skip | tr '^' ' ')")
      elif [[ -n $(kv "$l" error) ]]; then cells+=("$(error_cell "$l")")
      else cells+=("$(fmt_ms "$(kv "$l" ms)") ($(kv "$l" ns_per_page) ns/page)"); fi
    done
    row "page floor: first touch of N fresh 4 KiB pages (a dedicated stack touches ≥ 1)" "${cells[@]}"
  fi
done
absent_rows
echo
# notes from the largest dedicated run
if (( ! PEERS_ONLY )); then
  big=${P1[dedicated,${NS[-1]}]}
  if [[ -n $(kv "$big" guarded) ]]; then
    echo "Dedicated stacks at N = ${SIZES[-1]}: $(commas "$(kv "$big" guarded)") with a guard page (the vm.max_map_count" \
      "budget), $(commas "$(kv "$big" unguarded)") checked by canary at every switch; peak RSS $(fmt_kib "$(kv "$big" hwm_kb)")."
    echo
  fi
fi

# --- Prog 2, with 10M for the shared stack when memory allows
collect prog2 P2
P2X=""
if (( ! PEERS_ONLY )); then
  last=${NS[-1]}
  l=${P2[shared,$last]}
  if (( last == 1000000 )) && [[ -n $(kv "$l" rss_kb) && -z $(kv "$l" fail)$(kv "$l" cap) ]]; then
    per=$(awk -v a="$(kv "$l" rss_kb)" -v b="$(kv "$l" rss0_kb)" 'BEGIN { print (a - b) }')  # KiB per 1M
    est=$(awk -v p="$per" -v b="$(kv "$l" rss0_kb)" 'BEGIN { printf "%d", p * 10 * 1.2 + b + 80 * 1024 }')
    avail=$(mem_avail_kb)
    if awk -v e="$est" -v a="$avail" 'BEGIN { exit !(e < 0.6 * a) }'; then
      P2X=$(run_point "$BIN/bench_talk" prog2 shared 10000000)
      P2X_NOTE="10M shared: estimated $(fmt_kib "$est") from the 1M row (+20%), MemAvailable $(fmt_kib "$avail"): run."
    else
      P2X="skip=skipped:^needs^~$(fmt_kib "$est" | tr ' ' '^')"
      P2X_NOTE="10M shared: estimated $(fmt_kib "$est") from the 1M row (+20%), MemAvailable $(fmt_kib "$avail"): not run."
    fi
  fi
fi

p2_table() { # WHAT TITLE
  local what=$1 mode n cells
  local x=0; [[ -n $P2X ]] && x=1
  local heads=("${NHEAD[@]}"); (( x )) && heads+=("N = 10M")
  header "threads" "${heads[@]}"
  if [[ $what == rss ]]; then
    local extra=(); (( x )) && extra=("—")
    talk_row "*talk*: Python threads (\"RAM\")" "4.9 GB;11.8 GB;82 GB;? (256GB)" "${extra[@]}"
    talk_row "*talk*: gevent greenlets" "33 MB;41 MB;114 MB;858 MB" "${extra[@]}"
  fi
  for mode in "${MODES[@]}"; do
    cells=()
    for n in "${NS[@]}"; do cells+=("$(p2_cell "${P2[$mode,$n]}" "$what")"); done
    if (( x )); then
      if [[ $mode == shared ]]; then cells+=("$(p2_cell "$P2X" "$what")"); else cells+=("—"); fi
    fi
    row "${LABEL[$mode]}" "${cells[@]}"
    if [[ $mode == dedicated && ( $what == rss || $what == per ) ]]; then
      cells=()
      for n in "${NS[@]}"; do
        l=${PF[$n]}
        if [[ -n $(kv "$l" skip) ]]; then cells+=("—")
        elif [[ -n $(kv "$l" error) ]]; then cells+=("$(error_cell "$l")")
        elif [[ $what == rss ]]; then cells+=("+$(fmt_kib "$(kv "$l" rss_delta_kb)")")
        else cells+=("$(fmt_bytes "$(awk -v d="$(kv "$l" rss_delta_kb)" -v n="$n" 'BEGIN { print d * 1024 / n }')")"); fi
      done
      (( x )) && cells+=("—")
      row "page floor: N fresh pages touched (RSS growth)" "${cells[@]}"
    fi
  done
  if (( x )); then absent_rows "—"; else absent_rows; fi
}

echo "### Prog 2: N threads asleep — resident memory of the process (VmRSS)"
echo
p2_table rss
echo
echo "### Prog 2: bytes per thread = (RSS with N asleep − RSS before spawning) / N"
echo
p2_table per
echo
echo "### Prog 2: virtual size of the process (VmSize)"
echo
p2_table vm
echo
echo "### Prog 2: time until all N are asleep / time to kill and join them all"
echo
p2_table time
echo
[[ -n ${P2X_NOTE:-} ]] && { echo "$P2X_NOTE"; echo; }
if (( ! PEERS_ONLY )); then
  echo "Notes: the talk's thread \"RAM\" figures grow by ~8 MB per thread: they track the"
  echo "virtual size (compare the 8 MiB pthreads VmSize row), not resident memory. OS threads"
  echo "also cost kernel memory that VmRSS does not show (a kernel stack, 16 KiB, per thread)."
  echo "OS thread creation stops at the kernel's limits: kernel.pid_max and kernel.threads-max"
  echo "bound the threads alive, vm.max_map_count the mappings (a thread stack and its guard are"
  echo "two, and an exited thread keeps its stack until it is joined: in Prog 1 the early"
  echo "sleepers have exited while creation goes on). Here that is $(commas "$thread_limit") threads at most."
  echo "kernel.pid_max is machine-wide, and running it out makes every fork() on the machine"
  echo "fail, so bench_talk_pthreads stops creating while 1,024 pids are still free"
  echo "(BENCH_PID_HEADROOM): \"stopped at N (pid_max)\". vm.max_map_count is per process and is"
  echo "let fail: \"EAGAIN after N (vm.max_map_count)\" (the process then has $(commas "$(sysctl_val vm/max_map_count)") mappings)."
fi
echo

# ---------------------------------------------------------------- E: channels and mutexes

if (( ! PEERS_ONLY )); then
  # The same four programs with libgreen (bench_chan) and Go (bench/peers/chan.go, run
  # with GOMAXPROCS=1 and 2). Sizes keep the section to ~30 s; the pipeline's 1,000,000
  # integers of issue 4 take minutes per column (BENCH_FULL=1).
  CH_PP=500K CH_BUF=5M CH_MU=500K CH_STAGES=1000 CH_PIPE=10K
  (( FULL == 1 )) && CH_PIPE=1M
  CH_GO="" CH_GO_NOTE="Go not installed (make bench-peers)"
  if command -v go >/dev/null 2>&1; then
    mkdir -p "$PEERS_BIN"
    if [[ -z ${HOME:-} && -z ${GOCACHE:-} ]]; then export GOCACHE=$PEERS_BIN/go-cache GOPATH=$PEERS_BIN/gopath; fi
    if GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' go build -o "$PEERS_BIN/go_chan" "$ROOT/bench/peers/chan.go" 2>"$PEERS_BIN/build-chan.log"; then
      CH_GO=$PEERS_BIN/go_chan
      CH_GO_NOTE=$(go version | awk '{ print $3 }')
    else
      CH_GO_NOTE="Go build failed (see $PEERS_BIN/build-chan.log)"
    fi
  fi

  # ch_cell LINE [total]: ns per message, or what went wrong; "total" adds the run's time
  ch_cell() {
    local l=$1
    if [[ -n $(kv "$l" error) ]]; then error_cell "$l"; return; fi
    local c; c=$(awk -v v="$(kv "$l" ns_per_msg)" 'BEGIN { printf (v < 100 ? "%.1f" : "%.0f"), v }')
    c=$(commas "$c")
    [[ ${2:-} == total ]] && c="$c ($(fmt_ms "$(kv "$l" ms)"))"
    local it h; it=$(kv "$l" iters) h=$(kv "$l" handoffs)
    if [[ -n $it && -n $h ]] && (( h * 10 < it * 9 )); then
      c="$c ($(commas "$h") hand-offs in $(commas "$it") loops)"
    fi
    echo "$c"
  }
  # ch_ratio GO_LINE LG_LINE: how many times longer Go took per message
  ch_ratio() {
    local g l; g=$(kv "$1" ns_per_msg) l=$(kv "$2" ns_per_msg)
    if [[ -z $g || -z $l || -n $(kv "$1" error)$(kv "$2" error) ]]; then echo "—"; return; fi
    commas "$(awk -v g="$g" -v l="$l" 'BEGIN { r = g / l; printf (r < 10 ? "%.2f×" : "%.0f×"), r }')"
  }
  # ch_go MODE N [STAGES] -> "LINE1<TAB>LINE2": Go with GOMAXPROCS=1 and 2
  ch_go() {
    if [[ -z $CH_GO ]]; then printf '\t\n'; return; fi
    printf '%s\t%s\n' "$(GOMAXPROCS=1 run_timed "$CH_GO" "$@")" "$(GOMAXPROCS=2 run_timed "$CH_GO" "$@")"
  }
  # ch_row LABEL LG_LINE GO_LINES [total]
  ch_row() {
    local g1 g2; IFS=$'\t' read -r g1 g2 <<<"$3"
    if [[ -z $CH_GO ]]; then
      row "$1" "$(ch_cell "$2" "${4:-}")" "$CH_GO_NOTE" "$CH_GO_NOTE" "—" "—"
    else
      row "$1" "$(ch_cell "$2" "${4:-}")" "$(ch_cell "$g1" "${4:-}")" "$(ch_cell "$g2" "${4:-}")" \
        "$(ch_ratio "$g1" "$2")" "$(ch_ratio "$g2" "$2")"
    fi
  }

  echo "## E. Channels and mutexes (issue 4)"
  echo
  echo "Wall clock, ns per message (median of 3 runs when a run takes under 2 s; each run a"
  echo "fresh process, spawning included). libgreen: \`bench_chan\`, dedicated stacks unless"
  echo "marked shared; Go: bench/peers/chan.go ($CH_GO_NOTE), goroutines, Go channels and"
  echo "\`sync.Mutex\`, run with GOMAXPROCS=1 and 2. The shared rows compare with the same Go"
  echo "program. Ratios > 1: Go takes longer per message than libgreen, in this run."
  echo
  echo "- ping-pong: two green threads, two rendezvous (capacity 0) channels, one each way:"
  echo "  $CH_PP round trips, 2 messages each;"
  echo "- buffered: one producer streams $CH_BUF integers to one consumer through a channel of"
  echo "  capacity 128;"
  echo "- mutex: two green threads each loop $CH_MU times: lock, count, yield (\`green_yield\`,"
  echo "  \`runtime.Gosched\`), unlock. A hand-off is a lock acquired by the other one than its"
  echo "  last owner; the loop row divides by the loops of both instead. libgreen's mutex hands"
  echo "  the lock to its first waiter at unlock (FIFO, no barging), so every loop is a hand-off;"
  echo "  Go's lets the unlocking goroutine take it again and hands it over only once a waiter"
  echo "  has waited 1 ms (starvation mode): few hand-offs, each ~1 ms apart;"
  echo "- pipeline: $(commas "$CH_STAGES") green threads, each receives from the rendezvous channel before it"
  echo "  and sends (the integer + 1) to the next; $CH_PIPE integers; ns per message per stage ="
  echo "  total / (integers × stages); the run's total time in parentheses."
  echo
  header "program" "libgreen ns/msg" "Go GOMAXPROCS=1 ns/msg" "Go GOMAXPROCS=2 ns/msg" \
    "Go(1) / libgreen" "Go(2) / libgreen"
  declare -A LG
  LG[pp]=$(run_timed "$BIN/bench_chan" pingpong "$CH_PP")
  go_pp=$(ch_go pingpong "$CH_PP")
  ch_row "(a) ping-pong, rendezvous channels" "${LG[pp]}" "$go_pp"
  LG[pps]=$(run_timed "$BIN/bench_chan" pingpong-shared "$CH_PP")
  ch_row "(a) ping-pong, rendezvous channels, shared stack" "${LG[pps]}" "$go_pp"
  LG[buf]=$(run_timed "$BIN/bench_chan" buffered "$CH_BUF")
  ch_row "(b) buffered channel (capacity 128), one producer, one consumer" "${LG[buf]}" \
    "$(ch_go buffered "$CH_BUF")"
  lg_mu=$(run_timed "$BIN/bench_chan" mutex "$CH_MU")
  LG[mu]=$lg_mu
  go_mu=$(ch_go mutex "$CH_MU")
  ch_row "(c) mutex, per hand-off between the two" "$lg_mu" "$go_mu"
  # the same runs, per loop: msgs and ns_per_msg recomputed from iters
  per_loop() { [[ -z $1 || -n $(kv "$1" error) ]] && { echo "$1"; return; }
    echo "ms=$(kv "$1" ms) ns_per_msg=$(awk -v ms="$(kv "$1" ms)" -v it="$(kv "$1" iters)" 'BEGIN { print ms * 1e6 / it }')"; }
  IFS=$'\t' read -r g1 g2 <<<"$go_mu"
  ch_row "(c) mutex, per loop (lock, count, yield, unlock)" "$(per_loop "$lg_mu")" \
    "$(per_loop "$g1")"$'\t'"$(per_loop "$g2")"
  LG[pl]=$(run_timed "$BIN/bench_chan" pipeline "$CH_PIPE" "$CH_STAGES")
  go_pl=$(ch_go pipeline "$CH_PIPE" "$CH_STAGES")
  ch_row "(d) pipeline, $(commas "$CH_STAGES") stages, $CH_PIPE integers (per message per stage)" \
    "${LG[pl]}" "$go_pl" total
  LG[pls]=$(run_timed "$BIN/bench_chan" pipeline-shared "$CH_PIPE" "$CH_STAGES")
  ch_row "(d) pipeline, $(commas "$CH_STAGES") stages, $CH_PIPE integers, shared stack" \
    "${LG[pls]}" "$go_pl" total
  echo
  # what libgreen did per message (green_stats of the same runs)
  notes=()
  for k in pp pps buf mu pl pls; do
    l=${LG[$k]}
    [[ -z $(kv "$l" switches_per_msg) ]] && continue
    n="\`$(kv "$l" mode)\` $(awk -v v="$(kv "$l" switches_per_msg)" 'BEGIN { printf "%.2f", v }')"
    [[ -n $(kv "$l" copied_per_switch) ]] && n="$n ($(kv "$l" copied_per_switch) bytes copied per switch)"
    notes+=("$n")
  done
  if (( ${#notes[@]} )); then
    printf 'libgreen context switches per message: %s.\n' "$(printf '%s, ' "${notes[@]}" | sed 's/, $//')"
  fi
fi

# ---------------------------------------------------------------- H: across hubs (issue 14)

if (( ! PEERS_ONLY )) && [[ -x $BIN/bench_sync ]]; then
  # bench_sync's mutex, semaphore and channel rows on one hub and on two (two OS threads
  # with a hub each), beside bench/peers/chan.go's with GOMAXPROCS=1 and 2 (the helpers
  # are section E's).
  H_UNC=10M H_PP=500K H_MU=500K H_XPP=50K H_XMU=50K
  # a mutex line per loop: msgs and ns_per_msg from iters, the hand-offs kept for the cell
  hx_loop() { [[ -z $1 || -n $(kv "$1" error) ]] && { echo "$1"; return; }
    echo "ms=$(kv "$1" ms) iters=$(kv "$1" iters) handoffs=$(kv "$1" handoffs)" \
      "ns_per_msg=$(awk -v ms="$(kv "$1" ms)" -v it="$(kv "$1" iters)" 'BEGIN { print ms * 1e6 / it }')"; }
  hx() { # LABEL LG_LINE GO_MODE GO_N [per-loop]
    local lg=$2 g1="" g2=""
    if [[ -n $CH_GO && -n $3 ]]; then
      g1=$(GOMAXPROCS=1 run_timed "$CH_GO" "$3" "$4")
      g2=$(GOMAXPROCS=2 run_timed "$CH_GO" "$3" "$4")
    fi
    if [[ ${5:-} == per-loop ]]; then lg=$(hx_loop "$lg") g1=$(hx_loop "$g1") g2=$(hx_loop "$g2"); fi
    if [[ -z $CH_GO ]]; then
      row "$1" "$(ch_cell "$lg")" "$CH_GO_NOTE" "$CH_GO_NOTE" "—" "—"
    elif [[ -z $3 ]]; then
      row "$1" "$(ch_cell "$lg")" "—" "—" "—" "—"
    else
      row "$1" "$(ch_cell "$lg")" "$(ch_cell "$g1")" "$(ch_cell "$g2")" "$(ch_ratio "$g1" "$lg")" "$(ch_ratio "$g2" "$lg")"
    fi
  }
  echo "## H. Mutexes, semaphores and channels across hubs (issue 14)"
  echo
  echo "Wall clock, ns per operation or message (median of 3 runs when a run takes under 2 s)."
  echo "libgreen: \`bench_sync\`; \"two hubs\": each green thread on an OS thread of its own"
  echo "with its own hub, so that every hand-off and message crosses hubs (a remote wake-up:"
  echo "the note, and the eventfd write when the other hub sleeps in its poller). Go:"
  echo "bench/peers/chan.go ($CH_GO_NOTE) with GOMAXPROCS=1 and 2, where the runtime puts the two"
  echo "goroutines where it likes (with 2, often on one P). Uncontended rows: lock and unlock"
  echo "(acquire and release) in a loop, fastest of 5 in-process runs. Mutex rows: two green"
  echo "threads (goroutines) loop lock, count, yield, unlock; ns per loop of either, with the"
  echo "hand-offs (an acquisition by the other one) when they are fewer than the loops:"
  echo "libgreen's mutex hands over at every unlock that finds a waiter (FIFO), Go's lets the"
  echo "unlocker take it again (see E). Condition rows: two take turns (lock, wait for the"
  echo "turn, give it, signal, unlock), ns per turn. Ratios > 1: Go takes longer."
  echo
  header "program" "libgreen" "Go GOMAXPROCS=1" "Go GOMAXPROCS=2" "Go(1) / libgreen" "Go(2) / libgreen"
  hx "mutex lock + unlock, uncontended" "$(run_timed "$BIN/bench_sync" mutex-uncontended "$H_UNC")" mutex-uncontended "$H_UNC"
  hx "semaphore acquire + release, uncontended" "$(run_timed "$BIN/bench_sync" sem-uncontended "$H_UNC")" "" ""
  hx "ping-pong, rendezvous channels, one hub" "$(run_timed "$BIN/bench_sync" pingpong "$H_PP")" pingpong "$H_PP"
  hx "ping-pong, rendezvous channels, two hubs" "$(run_timed "$BIN/bench_sync" pingpong-hubs "$H_XPP")" pingpong "$H_PP"
  hx "mutex, per loop (lock, count, yield, unlock), one hub" "$(run_timed "$BIN/bench_sync" mutex "$H_MU")" mutex "$H_MU" per-loop
  hx "mutex, per loop, two hubs" "$(run_timed "$BIN/bench_sync" mutex-hubs "$H_XMU")" mutex "$H_MU" per-loop
  hx "condition, turns between two, one hub" "$(run_timed "$BIN/bench_sync" cond "$H_MU")" cond "$H_MU"
  hx "condition, turns between two, two hubs" "$(run_timed "$BIN/bench_sync" cond-hubs "$H_XPP")" cond "$H_MU"
  hx "floor: a cache line from one core to the other (two spinning OS threads, no libgreen)" "$(run_timed "$BIN/bench_sync" line-flip 1M)" "" ""
  echo
  echo "The floor row is what any hand-off between two cores costs at least on this machine:"
  echo "one store, seen by the other core. A two-hub message needs at least one such trip"
  echo "(libgreen's take three to four: the channel's lock, the waiter's line both ways);"
  echo "Go's two goroutines, mostly on one P, need none."
  echo

  # Fan-out, skew and Prog 1 on a hub group (bench/hubs.c, bench/peers/fanout.go).
  echo "### Fan-out and skew: 100,000 green threads that compute, sleep 10 ms, compute"
  echo
  if [[ ! -x $BIN/bench_hubs ]]; then
    echo "_bench_hubs is not built._"
  else
    H_GROUP=$(kv "$(run_point "$BIN/bench_hubs" features)" hub_group)
    H_NOTE="no hub group in this libgreen"
    [[ $H_GROUP == 1 ]] || echo "_This libgreen has no hub group yet (green_hubs_start): the 2-hub cells are empty._"
    [[ $H_GROUP == 1 ]] || echo
    H_N=${BENCH_FANOUT_N:-100000}
    cal=$(run_point "$BIN/bench_hubs" calibrate)
    H_IT=$(kv "$cal" iters)
    H_GO="" H_GO_NOTE="$CH_GO_NOTE"
    if [[ -n $CH_GO ]] && GOTOOLCHAIN=local GOPROXY=off GOFLAGS='' go build -o "$PEERS_BIN/go_fanout" "$ROOT/bench/peers/fanout.go" 2>"$PEERS_BIN/build-fanout.log"; then
      H_GO=$PEERS_BIN/go_fanout
    elif [[ -n $CH_GO ]]; then
      H_GO_NOTE="Go build failed (see $PEERS_BIN/build-fanout.log)"
    fi
    echo "Each task: work($(commas "${H_IT:-?}") iterations of a multiply-add chain, ~20 µs here by"
    echo "\`bench_hubs calibrate\`: $(kv "$cal" ns_per_iter) ns each), \`green_sleep(10)\`, the same work again; wall"
    echo "time from the first spawn to the last join (shared stacks but in the *-dedicated* rows). *fan-out*: spawned from main"
    echo "with \`attr.hub = GREEN_HUB_ANY\` after \`green_hubs_start(2)\`. *skew*: all spawned with"
    echo "GREEN_HUB_ANY while main's hub is the only one, then \`green_hubs_start(2)\`: the second hub"
    echo "starts empty and gets work only by stealing. Go: bench/peers/fanout.go, the same work per"
    echo "task (the same iteration count), goroutines started from main (Go puts them on the"
    echo "spawner's P and lets idle Ps steal: one program for all rows). *-dedicated*: the same on"
    echo "dedicated stacks, where a green thread that ran may move too (a shared-stack one moves only"
    echo "before its first run). Ratios < 1 are better."
    echo
    header "program" "libgreen, 1 hub" "libgreen, 2 hubs" "2 hubs / 1 hub" "Go GOMAXPROCS=1" "Go GOMAXPROCS=2" "libgreen(2) / Go(2)"
    h_div() { local a b; a=$(kv "$1" ms) b=$(kv "$2" ms)
      if [[ -z $a || -z $b ]]; then echo "—"; else awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }'; fi; }
    g1="" g2=""
    if [[ -n $H_GO && -n $H_IT ]]; then
      g1=$(GOMAXPROCS=1 run_timed "$H_GO" "$H_N" "$H_IT")
      g2=$(GOMAXPROCS=2 run_timed "$H_GO" "$H_N" "$H_IT")
    fi
    h_ms() { if [[ -z $1 ]]; then echo "$H_NOTE"; elif [[ -n $(kv "$1" error) ]]; then error_cell "$1"; else fmt_ms "$(kv "$1" ms)"; fi; }
    for m in fanout skew fanout-dedicated skew-dedicated; do
      l1=$(run_timed "$BIN/bench_hubs" "$m" 1 "$H_N" "$H_IT")
      l2=""
      [[ $H_GROUP == 1 ]] && l2=$(run_timed "$BIN/bench_hubs" "$m" 2 "$H_N" "$H_IT")
      if [[ -n $H_GO ]]; then
        row "$m, $(commas "$H_N") green threads" "$(h_ms "$l1")" "$(h_ms "$l2")" "$(h_div "$l2" "$l1")" \
          "$(h_ms "$g1")" "$(h_ms "$g2")" "$(h_div "$l2" "$g2")"
      else
        row "$m, $(commas "$H_N") green threads" "$(h_ms "$l1")" "$(h_ms "$l2")" "$(h_div "$l2" "$l1")" \
          "$H_GO_NOTE" "$H_GO_NOTE" "—"
      fi
    done
    l1=$(run_timed "$BIN/bench_hubs" prog1 1 1M)
    l2=""
    [[ $H_GROUP == 1 ]] && l2=$(run_timed "$BIN/bench_hubs" prog1 2 1M)
    if (( GO_OK )); then
      g2=$(GOMAXPROCS=2 run_timed "$PEERS_BIN/go_prog1" 1000000)
      row "Prog 1 at 1M (GREEN_HUB_ANY), sleep 200 ms" "$(h_ms "$l1")" "$(h_ms "$l2")" "$(h_div "$l2" "$l1")" "—" "$(h_ms "$g2")" "$(h_div "$l2" "$g2")"
    else
      row "Prog 1 at 1M (GREEN_HUB_ANY), sleep 200 ms" "$(h_ms "$l1")" "$(h_ms "$l2")" "$(h_div "$l2" "$l1")" "—" "—" "—"
    fi
  fi
  echo
fi

# ---------------------------------------------------------------- P: monkey patching

# Issue 6: N concurrent blocking curl_easy_perform calls (libcurl, unmodified) against
# a local server that answers each after 200 ms; bench_patch_curl is linked with
# libgreen-patch.so. Sequential is measured on P_SEQ calls and extrapolated to N.
if (( ! PEERS_ONLY )) && [[ -x $BIN/bench_patch_curl ]]; then
  P_N=1000 P_SEQ=20
  p_cell() { # LINE [SCALE]: wall time (scaled when extrapolated), or what went wrong
    local l=$1
    if [[ -n $(kv "$l" error) ]]; then error_cell "$l"; return; fi
    local ms; ms=$(awk -v v="$(kv "$l" ms)" -v s="${2:-1}" 'BEGIN { print v * s }')
    local c; c=$(fmt_ms "$ms")
    [[ ${2:-1} != 1 ]] && c="$c (extrapolated from $(kv "$l" n) calls: $(fmt_ms "$(kv "$l" ms)"))"
    [[ $(kv "$l" ok) != "$(kv "$l" n)" ]] && c="$c, only $(kv "$l" ok)/$(kv "$l" n) correct"
    echo "$c"
  }
  p_rss() { # LINE: RSS with all done, and its growth
    local l=$1
    if [[ -n $(kv "$l" error) ]]; then echo "—"; return; fi
    echo "$(fmt_kib "$(kv "$l" rss_kb)") (+$(fmt_kib $(( $(kv "$l" rss_kb) - $(kv "$l" rss0_kb) ))); peak $(fmt_kib "$(kv "$l" hwm_kb)"))"
  }
  pg=$(run_timed "$BIN/bench_patch_curl" green "$P_N")
  pt=$(run_timed "$BIN/bench_patch_curl" pthreads "$P_N")
  ps=$(run_point "$BIN/bench_patch_curl" sequential "$P_SEQ")
  echo "## P. Monkey patching: $(commas "$P_N") blocking curl_easy_perform calls (issue 6)"
  echo
  echo "Each call fetches from a local HTTP server (a forked child) that answers after 200 ms;"
  echo "libcurl is the distribution's, unmodified. Wall time of all $(commas "$P_N") calls (thread creation"
  echo "included); RSS of the calling process once all are done (the server not counted)."
  echo
  header "how" "wall time" "RSS (growth; peak)"
  row "libgreen-patch.so: $(commas "$P_N") green threads" "$(p_cell "$pg")" "$(p_rss "$pg")"
  row "$(commas "$P_N") OS threads (pthreads, default stacks)" "$(p_cell "$pt")" "$(p_rss "$pt")"
  row "sequential, one thread" "$(p_cell "$ps" "$(( P_N / P_SEQ ))")" "$(p_rss "$ps")"
  echo
fi
echo

# ---------------------------------------------------------------- R: regular files

# libgreen-patch.so's file rule (docs/patch.md): what a regular-file call costs inline,
# through the thread pool and through io_uring; the file lives in the build directory.
if (( ! PEERS_ONLY )) && [[ -x $BIN/bench_file_rule ]]; then
  echo "## R. Regular files: inline, the thread pool, io_uring"
  echo
  "$BIN/bench_file_rule" "$BUILD" 2>&1 || echo "**bench_file_rule failed (exit $?)**"
  echo
fi

# ---------------------------------------------------------------- F, G: network (issue 5)

if (( ! PEERS_ONLY )); then
  source "$ROOT/bench/net.sh"
fi

# ---------------------------------------------------------------- T: TLS (issue 15)

if (( ! PEERS_ONLY )); then
  source "$ROOT/bench/tls.sh"
fi

# ---------------------------------------------------------------- R: real programs (issue 12)

# The corpus of unmodified Debian programs on real threads and under greenrun
# (bench/corpus.sh, also `make bench-corpus`; 1-2 minutes, more while some hang).
if (( ! PEERS_ONLY )); then
  bash "$ROOT/bench/corpus.sh" "$BUILD" | grep -v '^_bench/corpus.sh took'
fi
echo "_bench/run.sh took $(( $(date +%s) - T_START )) s._"
