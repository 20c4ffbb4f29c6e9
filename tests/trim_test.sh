#!/bin/bash
# trim_test.sh PROG HOT_LIST — a gdb breakpoint set before `run` on a function of
# libgreen.so's cold code (green_dump, called by tests/progs/cold_break.c) fires: the
# constructors' trim of the cold code (sys.c, green_private_text_trim) keeps the pages a
# debugger or a uprobe wrote into. Exit 77 (skipped) without gdb.
set -u
prog=$1 hot=$2
command -v gdb >/dev/null 2>&1 || { echo "gdb is not installed: skipped"; exit 77; }
if grep -qx green_dump "$hot"; then
  echo "green_dump is in $hot now: pick another cold function for this test"; exit 1
fi
out=$(timeout 120 gdb -nx -batch -q -ex "set breakpoint pending on" -ex "break green_dump" \
  -ex "run" -ex "bt 1" -ex "kill" "$prog" 2>&1)
echo "$out"
grep -qE "^Breakpoint 1, .*green_dump" <<<"$out" || { echo "MISSING: the breakpoint on green_dump did not fire"; exit 1; }
