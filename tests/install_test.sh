#!/usr/bin/env bash
# install_test.sh SOURCE_DIR BUILD_DIR — installing libgreen as a user does, three ways:
#  1. the lines of README.md and docs/install.md between <!-- test:NAME --> markers, run
#     as written (HOME a scratch directory, `make install` building in a scratch
#     INSTALL_BUILD): make install, pkg-config with rpath, LD_LIBRARY_PATH, static,
#     CMake, greenrun, the gdb helper (auto-loaded, and sourced). pkg-config sees nothing
#     but the install's own .pc files (PKG_CONFIG_LIBDIR: as on a machine without
#     liburing-dev, libc-ares-dev or libunwind-dev) and must add no system include dir;
#  2. `make install PREFIX=/usr DESTDIR=...`: everything lands under DESTDIR;
#  3. `cmake --install` of the build under test into another prefix: libgreen-patch
#     through pkg-config (kept despite --as-needed) and find_package shared, static and
#     patch.
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "install: $*" >&2; exit 1; }
# The lines of FILE between <!-- test:NAME ...--> and <!-- /test:NAME -->, fences dropped.
block() {
    local out
    out=$(awk -v n="$2" 'index($0, "<!-- /test:" n " -->") == 1 { on = 0 }
                         on && !/^```/ { print }
                         index($0, "<!-- test:" n " ") == 1 { on = 1 }' "$1")
    [[ -n $out ]] || fail "no block test:$2 in $1"
    printf '%s\n' "$out"
}
# Run a block's lines with bash -e in directory DIR, HOME the scratch one.
run_block() {
    local dir=$1 file=$2 name=$3
    echo "--- $(basename "$file") test:$name"
    block "$file" "$name"
    (cd "$dir" && bash -euo pipefail -c "$(block "$file" "$name")") || fail "test:$name failed"
}

readme=$src/README.md doc=$src/docs/install.md
# the two pages show the same install and use lines
for name in install use; do
    [[ $(block "$readme" $name) == "$(block "$doc" $name)" ]] ||
        fail "README.md and docs/install.md differ in test:$name"
done

# ---- 1. as written ----
export HOME=$tmp/home INSTALL_BUILD=$tmp/install-build
mkdir -p "$HOME" "$tmp/work"
unset PKG_CONFIG_PATH
export PKG_CONFIG_LIBDIR=$HOME/.local/lib/pkgconfig   # nothing but what we install
run_block "$src" "$readme" install >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; exit 1; }
tail -1 "$tmp/make.log"
block "$readme" example >"$tmp/work/prog.c"
out=$(run_block "$tmp/work" "$readme" use 2>&1) || { echo "$out"; exit 1; }
echo "$out"
grep -q "^100000 green threads slept 200 ms in" <<<"$out" || fail "prog did not run"
pc=$(PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig pkg-config --cflags --libs libgreen)
echo "pkg-config --cflags --libs libgreen: $pc"
grep -qE -- '-I/usr/include|-I/usr/local/include' <<<"$pc" && fail "a system include dir in: $pc"
grep -qE -- '-l(uring|cares|unwind)' <<<"$pc" && fail "a private library in a shared link: $pc"
export PKG_CONFIG_PATH=$HOME/.local/lib/pkgconfig
run_block "$tmp/work" "$doc" ld-library-path
run_block "$tmp/work" "$doc" static
readelf -d "$tmp/work/prog-static" | grep -q 'libgreen\.so' && fail "prog-static needs libgreen.so"
block "$doc" cmake-lists >"$tmp/work/CMakeLists.txt"
run_block "$tmp/work" "$doc" cmake >/dev/null
out=$(run_block "$tmp/work" "$doc" greenrun 2>&1)
grep -q "^green-patch: read  *patched" <<<"$out" || { echo "$out"; fail "greenrun from the install"; }
echo "greenrun from the install: $(grep -c ' patched' <<<"$out") symbols patched"
# what it preloads: libgreen-run.so (libgreen and the patch in one; GCC builds), from
# LIBDIR/libgreen, a directory ldconfig does not scan (its soname is libgreen.so.0)
maps=$("$HOME/.local/bin/greenrun" cat /proc/self/maps)
if [[ ${CC:-cc} != *clang* ]]; then
    grep -q '/libgreen/libgreen-run\.so$' <<<"$maps" ||
        fail "the installed greenrun does not preload LIBDIR/libgreen/libgreen-run.so"
fi

# the gdb helper, auto-loaded with ~/.gdbinit as docs/install.md says, and sourced by hand
if command -v gdb >/dev/null 2>&1; then
    cat >"$tmp/work/gprog.c" <<'C'
#include <green.h>
void gdb_here(void) {}
static void *napper(void *a) { green_sleep(100000); return a; }
int main(void)
{
    green_attr_t at = {.name = "napper"};
    green_t g = green_spawn_attr(napper, NULL, &at);
    green_yield();
    gdb_here();
    green_kill(g);
    return green_join(g, NULL, -1);
}
C
    (cd "$tmp/work" && cc -g gprog.c $(pkg-config --cflags --libs libgreen) \
        -Wl,-rpath,$(pkg-config --variable=libdir libgreen) -o gprog)
    gdb_info() { (cd "$tmp/work" && timeout 120 gdb -batch -q "$@" -ex "break gdb_here" -ex run \
        -ex "info green" -ex kill ./gprog 2>&1); }
    want='green [0-9]+ "napper" state=waiting on=sleep'
    out=$(gdb_info)
    grep -qE "$want" <<<"$out" && fail "gdb loaded the helper before ~/.gdbinit said where: $out"
    run_block "$tmp/work" "$doc" gdbinit
    out=$(gdb_info)
    grep -qE "$want" <<<"$out" || { echo "$out"; fail "gdb did not auto-load the helper"; }
    out=$(gdb_info -nx -ex "source ~/.local/share/libgreen/gdb/green.py")
    grep -qE "$want" <<<"$out" || { echo "$out"; fail "sourcing the installed helper"; }
    echo "gdb: the installed helper is auto-loaded, and sourced by hand"
else
    echo "gdb is not installed: the gdb helper is not checked"
fi
unset PKG_CONFIG_PATH PKG_CONFIG_LIBDIR

# ---- 2. staged: PREFIX=/usr, DESTDIR ----
stage=$tmp/stage
(cd "$src" && make install PREFIX=/usr DESTDIR="$stage" >"$tmp/stage.log" 2>&1) || { cat "$tmp/stage.log"; exit 1; }
[[ -f $stage/usr/include/green.h && -x $stage/usr/bin/greenrun ]] || fail "DESTDIR: files missing"
pcdir=$(dirname "$(find "$stage/usr/lib" -name libgreen.pc)")
libdir=${pcdir%/pkgconfig}
[[ -f $stage/usr/share/gdb/auto-load${libdir#"$stage"}/libgreen.so.0.1.0-gdb.py ]] ||
    fail "DESTDIR: no gdb auto-load script for ${libdir#"$stage"}"
! grep -rlF "$stage" "$stage" || fail "DESTDIR: the staging path is recorded in those files"
PKG_CONFIG_LIBDIR=$pcdir pkg-config --libs libgreen | grep -q -- "-L$pcdir/" || fail "staged .pc not relocatable"
echo "DESTDIR: PREFIX=/usr staged under $(find "$stage" -type f | wc -l) files, libdir ${libdir#"$stage"}"

# ---- 3. cmake --install of the build under test ----
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cat > "$tmp/use.c" <<'C'
#include <green.h>
static void *f(void *a) { green_sleep(5); return a; }
int main(void)
{
    void *r = 0;
    green_t g = green_spawn(f, (void *)42);
    return green_join(g, &r, -1) != 0 || r != (void *)42;
}
C
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib64/pkgconfig"
# libgreen-patch through pkg-config: like a program whose blocking calls are made inside
# another library (libcurl), this one names no libc function the patch defines (it
# finds nanosleep at run time), yet two green threads must sleep concurrently: the
# library has to be kept despite --as-needed
cat > "$tmp/patched.c" <<'C'
#include <green.h>
#include <dlfcn.h>
#include <time.h>
static void *nap(void *a)
{
    int (*sleep_fn)(const struct timespec *, struct timespec *) =
        (int (*)(const struct timespec *, struct timespec *))dlsym(RTLD_DEFAULT, "nanosleep");
    struct timespec d = {0, 300000000};
    sleep_fn(&d, 0);
    return a;
}
int main(void)
{
    int64_t t0 = green_now();
    green_t g[2] = {green_spawn(nap, 0), green_spawn(nap, 0)};
    if (green_joinall(g, 2, -1) != 0)
        return 2;
    return green_now() - t0 >= 550; /* one after another: 600 ms */
}
C
cc "$tmp/patched.c" $(pkg-config --cflags --libs libgreen-patch) -ldl -Wl,-rpath,"$tmp/prefix/lib" -o "$tmp/patched"
"$tmp/patched"
# its own header is installed too
printf '#include <green_patch.h>\nint (*report)(FILE *) = green_patch_report;\n' |
    cc -fsyntax-only $(pkg-config --cflags libgreen-patch) -x c -
cat > "$tmp/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(use C)
find_package(green REQUIRED)
add_executable(use_shared use.c)
target_link_libraries(use_shared green::green)
add_executable(use_static use.c)
target_link_libraries(use_static green::green_static)
add_executable(patched patched.c)
target_link_libraries(patched green::green-patch green::green ${CMAKE_DL_LIBS})
CM
cmake -S "$tmp" -B "$tmp/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/b" >/dev/null
"$tmp/b/use_shared"
"$tmp/b/use_static"
"$tmp/b/patched"
echo "install: the README's and install.md's lines, DESTDIR, pkg-config (libgreen, libgreen-patch), find_package shared and static all work"
