#!/usr/bin/env bash
# exports_test.sh SOURCE_DIR BUILD_DIR LIBGREEN LIBGREEN_PATCH CC [LIBGREEN_RUN] — the
# libraries export exactly their interfaces, each symbol where it belongs:
#   libgreen.so, node LIBGREEN_0.1      == the functions include/green.h marks GREEN_API
#   libgreen.so, node LIBGREEN_PRIVATE  == the functions src/green_private.h marks
#                                          GREEN_PRIVATE_API
#   libgreen.so, anything else          == nothing
#   libgreen-patch.so (unversioned)     == the names of its GREEN_PATCH/GREEN_PATCH_THREAD
#                                          entries (src/patch/*.c) + the functions
#                                          include/green_patch.h marks GREEN_PATCH_API
#   libgreen-run.so (when built)        == libgreen.so's two nodes + libgreen-patch.so's
#                                          unversioned symbols, nothing else; its soname
#                                          libgreen.so.0 (greenrun's library: both in one)
# (Files of src/patch/ left out of this build for want of an optional library are named
# in PATCH_UNBUILT: their entries are not expected.) Every export is a function (no data). And the examples and benchmarks (object files
# under BUILD_DIR/examples and BUILD_DIR/bench, when built) call libgreen only through
# the API. Any difference fails the test and is printed.
set -euo pipefail
src=$1 build=$2 core=$3 patch=$4 cc=$5 run=${6:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# Functions declared with marker $1 in header $2: comments stripped by the compiler
# (macros left alone), directives dropped, then each "MARKER ... name(" gives name.
declared() {
    "$cc" -fpreprocessed -dD -E -P "$2" 2>/dev/null | grep -v '^[[:space:]]*#' | tr '\n' ' ' |
        grep -o "$1[[:space:]][^;(]*(" | sed -E 's/.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*\($/\1/' |
        sort -u
}

# "name version type" for each symbol library $1 exports: defined in its dynamic symbol
# table, global or weak, not hidden (version "-" when unversioned); the version nodes'
# own symbols (absolute, empty objects named after the node) left out.
exported() {
    "${READELF:-readelf}" --dyn-syms -W "$1" | awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && $5 != "LOCAL" && $6 != "HIDDEN" && $6 != "INTERNAL" {
        name = $8; ver = "-"
        if (index(name, "@")) { ver = name; sub(/^[^@]*@+/, "", ver); sub(/@.*/, "", name) }
        if ($7 == "ABS" && $4 == "OBJECT" && $3 == 0 && (ver == "-" || ver == name)) next
        print name, ver, $4 }' | sort
}

# compare WHAT EXPECTED_FILE ACTUAL_FILE
compare() {
    if ! diff -u "$2" "$3" > "$tmp/diff"; then
        echo "exports: $1 differ (- expected, + exported):"
        grep '^[-+][^-+]' "$tmp/diff" | sed 's/^/    /'
        fail=1
    fi
}

declared GREEN_API "$src/include/green.h" > "$tmp/api"
declared GREEN_PRIVATE_API "$src/src/green_private.h" > "$tmp/private"
# (PATCH_UNBUILT: the files of src/patch/ this build left out, for want of a library)
patch_sources=()
for f in "$src"/src/patch/*.c; do
    case " ${PATCH_UNBUILT:-} " in *" ${f##*/} "*) continue ;; esac
    patch_sources+=("$f")
done
{ grep -ho 'GREEN_PATCH\(_THREAD\)\?([A-Za-z0-9_]*)' "${patch_sources[@]}" | sed 's/.*(\(.*\))/\1/'
  declared GREEN_PATCH_API "$src/include/green_patch.h"; } | sort -u > "$tmp/patch"
for f in api private patch; do
    [ -s "$tmp/$f" ] || { echo "exports: found no $f declarations (the parsing broke?)"; exit 1; }
done

exported "$core" > "$tmp/core_syms"
exported "$patch" > "$tmp/patch_syms"
awk '$2 == "LIBGREEN_0.1" {print $1}' "$tmp/core_syms" > "$tmp/core_api"
awk '$2 == "LIBGREEN_PRIVATE" {print $1}' "$tmp/core_syms" > "$tmp/core_private"
awk '$2 != "LIBGREEN_0.1" && $2 != "LIBGREEN_PRIVATE" {print $1 "@" $2}' "$tmp/core_syms" > "$tmp/core_other"
awk '{print $1}' "$tmp/patch_syms" > "$tmp/patch_all"
awk '$2 != "-" {print $1 "@" $2}' "$tmp/patch_syms" > "$tmp/patch_versioned"
awk '$3 != "FUNC" && $3 != "IFUNC" {print $1 " (" $3 ")"}' "$tmp/core_syms" "$tmp/patch_syms" > "$tmp/data"

compare "libgreen.so LIBGREEN_0.1 and green.h's GREEN_API functions" "$tmp/api" "$tmp/core_api"
compare "libgreen.so LIBGREEN_PRIVATE and green_private.h's functions" "$tmp/private" "$tmp/core_private"
compare "libgreen.so's exports outside those nodes" /dev/null "$tmp/core_other"
compare "libgreen-patch.so and its GREEN_PATCH entries + green_patch.h" "$tmp/patch" "$tmp/patch_all"
compare "libgreen-patch.so's versioned exports (wrappers must be unversioned)" /dev/null "$tmp/patch_versioned"
compare "exported non-functions" /dev/null "$tmp/data"

# the programs of this tree built on libgreen call only its API
objs=$(find "$build/examples" "$build/bench" -name '*.o' 2>/dev/null || true)
if [ -n "$objs" ]; then
    # shellcheck disable=SC2086
    "${NM:-nm}" -u $objs | awk '$1 == "U" && $2 ~ /^green_/ {print $2}' | sort -u > "$tmp/used"
    comm -23 "$tmp/used" "$tmp/api" > "$tmp/beyond"
    compare "libgreen functions the examples and benchmarks call beyond the API" /dev/null "$tmp/beyond"
fi

# libraries loaded by the first call that needs them, never at start (each would cost
# every process its mapped pages): OpenSSL (tls.c), c-ares (resolve.c), libunwind and
# its liblzma (backtrace.c), liburing (poll_uring.c)
for lib in "$core" "$patch"; do
    "${READELF:-readelf}" -d "$lib" |
        grep -oE 'Shared library: \[(libssl|libcrypto|libcares|libunwind|liblzma|liburing)[^]]*\]' > "$tmp/needed" || true
    compare "$(basename "$lib")'s start-up dependencies on OpenSSL, c-ares, libunwind or liburing" /dev/null "$tmp/needed"
done

if [ -n "$run" ]; then
    exported "$run" > "$tmp/run_syms"
    awk '$2 == "LIBGREEN_0.1" {print $1}' "$tmp/run_syms" > "$tmp/run_api"
    awk '$2 == "LIBGREEN_PRIVATE" {print $1}' "$tmp/run_syms" > "$tmp/run_private"
    awk '$2 == "-" {print $1}' "$tmp/run_syms" > "$tmp/run_plain"
    awk '$2 != "LIBGREEN_0.1" && $2 != "LIBGREEN_PRIVATE" && $2 != "-" {print $1 "@" $2}' "$tmp/run_syms" > "$tmp/run_other"
    compare "libgreen-run.so LIBGREEN_0.1 and green.h's GREEN_API functions" "$tmp/api" "$tmp/run_api"
    compare "libgreen-run.so LIBGREEN_PRIVATE and green_private.h's functions" "$tmp/private" "$tmp/run_private"
    compare "libgreen-run.so's unversioned exports and libgreen-patch.so's" "$tmp/patch" "$tmp/run_plain"
    compare "libgreen-run.so's other exports" /dev/null "$tmp/run_other"
    awk '$3 != "FUNC" && $3 != "IFUNC" {print $1 " (" $3 ")"}' "$tmp/run_syms" > "$tmp/run_data"
    compare "libgreen-run.so's exported non-functions" /dev/null "$tmp/run_data"
    soname=$("${READELF:-readelf}" -d "$run" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$soname" = libgreen.so.0 ] || { echo "exports: libgreen-run.so's soname is '$soname', not libgreen.so.0"; fail=1; }
fi

[ "$fail" = 0 ] || exit 1
echo "exports: libgreen.so $(wc -l < "$tmp/core_api") API + $(wc -l < "$tmp/core_private") private functions," \
     "libgreen-patch.so $(wc -l < "$tmp/patch_all") symbols${run:+, libgreen-run.so both}: as declared"
