#!/bin/sh
# greenrun_test.sh GREENRUN PLAIN_IO ONE_RUNTIME ONE_RUNTIME_PATCHED — tools/greenrun on
# an unmodified program (built without libgreen): its output is what it prints without
# the patch, --report lists the wrapped symbols as patched, and nothing maps libunwind
# until something is reported. And on a program linked with libgreen
# (tests/progs/one_runtime.c), and one linked with libgreen-patch.so too: one runtime,
# with each library greenrun may preload.
set -e
greenrun=$1 prog=$2 linked=$3 patched=$4
want=$("$prog")
got=$("$greenrun" "$prog")
if [ "$got" != "$want" ]; then
    echo "greenrun changed the output:"; echo "--- without"; echo "$want"; echo "--- with"; echo "$got"
    exit 1
fi
echo "$got"
report=$("$greenrun" --report "$prog" 2>&1 >/dev/null)
for sym in read write connect poll select nanosleep getaddrinfo __recv_chk; do
    if ! echo "$report" | grep -q "^green-patch: $sym  *patched"; then
        echo "--report does not list $sym as patched:"; echo "$report"
        exit 1
    fi
done
if echo "$report" | grep -v pass-through | grep -q "NOT patched"; then
    echo "--report shows unpatched symbols:"; echo "$report"
    exit 1
fi
echo "--report: $(echo "$report" | grep -c ' patched') symbols patched, e.g.:"
echo "$report" | head -4
# libunwind (and its liblzma) is loaded by the first report, not at start: a process
# under greenrun (the monitor on) that reports nothing does not map it
maps=$("$greenrun" cat /proc/self/maps)
echo "$maps" | grep -qE 'libgreen-(run|patch)' || { echo "cat /proc/self/maps under greenrun: no libgreen-run.so or libgreen-patch.so?"; exit 1; }
if echo "$maps" | grep -E 'libunwind|liblzma'; then
    echo "a process under greenrun that reported nothing maps libunwind or liblzma"
    exit 1
fi
# a program linked with libgreen: one runtime. With libgreen-run.so (greenrun's choice
# where it is built) nothing else of ours is mapped; with libgreen-patch.so, it and
# libgreen.so
dir=$(dirname "$greenrun")
for lib in "$dir/libgreen-run.so" "$dir/libgreen-patch.so"; do
    [ -f "$lib" ] || continue
    for p in "$linked" "$patched"; do
        out=$(GREEN_PATCH_LIB=$lib "$greenrun" "$p") || { echo "$p under $lib failed: $out"; exit 1; }
        echo "$(basename "$p") under $(basename "$lib"): $(echo "$out" | tr '\n' ' ')"
        libs=$(echo "$out" | grep -c '^mapped: ')
        case $lib:$p in
            *-run.so:"$linked") want=1 ;;  # libgreen-run.so alone
            *) want=2 ;;                   # and libgreen-patch.so's copy, or the pair
        esac
        [ "$libs" = "$want" ] || { echo "expected $want libgreen libraries mapped, got: $out"; exit 1; }
        echo "$out" | grep -qx ok || { echo "$p did not finish: $out"; exit 1; }
    done
done
if [ -f "$dir/libgreen-run.so" ]; then
    "$greenrun" cat /proc/self/maps | grep -q 'libgreen-run.so' || { echo "greenrun does not preload libgreen-run.so"; exit 1; }
fi
# the environment switches
GREEN_PATCH_LIB=/nonexistent "$greenrun" true 2>/dev/null && { echo "a missing library must fail"; exit 1; }
echo "greenrun: ok"
