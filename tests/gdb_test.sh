#!/bin/bash
# gdb_test.sh PROGRAM HELPER — tools/gdb/green.py in gdb's batch mode: `info green` lists
# the green threads of test_debug --gdb-child, live and from a core file of it, and
# `green bt` walks a suspended one.
# Exit 77 (skipped) without gdb.
set -u
prog=$1 helper=$2 sanitizers=${3:-}
command -v gdb >/dev/null 2>&1 || { echo "gdb is not installed: skipped"; exit 77; }
# a core file of it too, except under sanitizers (their shadow memory: terabytes to dump)
core=$(mktemp -u /tmp/green-gdb-core.XXXXXX)
trap 'rm -f "$core"' EXIT
gcore_cmd="gcore $core"
[[ -n $sanitizers ]] && gcore_cmd="echo"
out=$(timeout 120 gdb -nx -batch -q \
  -ex "source $helper" -ex "break gdb_break_here" -ex "run --gdb-child" \
  -ex "$gcore_cmd" \
  -ex "info green" -ex "python import gdb; gdb.execute('green bt %d' % next(int(g['id']) for g in greens() if g['ext'] and g['ext']['name'].string() == 'gdb-sleeper'))" \
  -ex "bt 1" -ex "kill" "$prog" 2>&1)
echo "$out"
fail=0
expect() { grep -qE -- "$1" <<<"$out" || { echo "MISSING: $1"; fail=1; }; }
expect 'green 1 "root" state=running \(current\)'
expect 'green [0-9]+ "gdb-sleeper" state=waiting on=sleep spawner=1 stack=dedicated'
expect 'green [0-9]+ "gdb-reader" state=waiting on=fd fd=[0-9]+'
expect '3 green threads \(root included\)'
expect 'green_sleep_until \(deadline'
expect 'in sleeper '
expect '#0 .*gdb_break_here'   # the real registers are back

# the same listing from the core file gcore wrote (no live process)
if [[ -n $sanitizers ]]; then
  echo "core file: not under sanitizers ($sanitizers)"
elif [[ -s $core ]]; then
  cout=$(timeout 120 gdb -nx -batch -q -ex "source $helper" -ex "info green" "$prog" "$core" 2>&1)
  echo "$cout"
  grep -qE 'green [0-9]+ "gdb-sleeper" state=waiting on=sleep' <<<"$cout" || { echo "MISSING in the core: gdb-sleeper"; fail=1; }
  grep -qE 'green [0-9]+ "gdb-reader" state=waiting on=fd' <<<"$cout" || { echo "MISSING in the core: gdb-reader"; fail=1; }
else
  echo "MISSING: gcore wrote no core file"; fail=1
fi
# Without debug info (a Release build, a stripped package): one line that says what is
# missing and how to get it, no Python traceback.
nodebug=$(mktemp /tmp/green-gdb-nodebug.XXXXXX)
trap 'rm -f "$core" "$nodebug"' EXIT
if objcopy --strip-debug "$prog" "$nodebug" 2>/dev/null; then
  nout=$(timeout 120 gdb -nx -batch -q -ex "source $helper" -ex "break gdb_break_here" \
    -ex "run --gdb-child" -ex "info green" -ex "green bt 1" -ex "kill" "$nodebug" 2>&1)
  echo "$nout"
  grep -q "Python Exception\|Traceback" <<<"$nout" && { echo "UNEXPECTED: a Python exception without debug info"; fail=1; }
  [[ $(grep -c "libgreen's debug info is not loaded (the types struct green and struct green_hub are unknown): build libgreen with -g" <<<"$nout") == 2 ]] ||
    { echo "MISSING: the one-line 'debug info is not loaded' message for both commands"; fail=1; }
  # stripped of every symbol: says that too
  strip -s "$nodebug" 2>/dev/null
  sout=$(timeout 60 gdb -nx -batch -q -ex "source $helper" -ex "info green" "$nodebug" 2>&1)
  echo "$sout"
  grep -q "no symbol green__tls_hub: libgreen is not in this program, or is stripped" <<<"$sout" ||
    { echo "MISSING: the one-line message for a stripped program"; fail=1; }
else
  echo "objcopy is not installed: the no-debug-info case is not checked"
fi
exit $fail
