#!/bin/bash
# hot_pages_test.sh GREENRUN PROG LIB — what every program under `greenrun --threads`
# runs is in the hot layout's lists (src/hot.list, src/patch/hot.list): PROG
# (tests/progs/hot_pages.c, a plain threaded program) runs under GREENRUN and finds none
# of LIB's code pages past __green_hot_end resident. A function left out of the lists
# that such a program runs costs every process up to 64 KiB of resident code (the binding
# of dedicated stacks at the first run, 2026-12-06, did: 56 KiB in tinyproxy). Exit 77
# (skipped) without nm and readelf, or when LIB has no hot layout.
set -u
greenrun=$1 prog=$2 lib=$3
command -v nm >/dev/null 2>&1 && command -v readelf >/dev/null 2>&1 ||
  { echo "nm or readelf is not installed: skipped"; exit 77; }
end=$(nm "$lib" | awk '$3 == "__green_hot_end" { print $1 }')
[ -n "$end" ] || { echo "$lib has no __green_hot_end (no hot layout, or stripped): skipped"; exit 77; }
# the first page wholly past the hot code, and the end of the executable segment
lo=$(( (0x$end + 4095) / 4096 * 4096 ))
seg=$(readelf -lW "$lib" | awk '$1 == "LOAD" && / R E / { print $3, $6; exit }')
hi=""
[ -n "$seg" ] && hi=$(( ${seg% *} + ${seg#* } ))
[ -n "$hi" ] && [ "$hi" -gt "$lo" ] || { echo "cannot read $lib's code segment"; exit 1; }
path=$(readlink -f "$lib")
echo "hot code ends at 0x$end; checking pages 0x$(printf %x $lo)-0x$(printf %x $hi) of $path"
"$greenrun" --threads "$prog" "$path" "$lo" "$hi"
