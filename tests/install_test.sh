#!/usr/bin/env bash
# install_test.sh BUILD_DIR — `cmake --install` into a scratch prefix, then build and run a
# program against it three ways: pkg-config (shared), find_package(green) shared and static.
set -euo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
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
cc "$tmp/use.c" $(pkg-config --cflags --libs libgreen) -Wl,-rpath,"$tmp/prefix/lib" -o "$tmp/use_pc"
"$tmp/use_pc"
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
echo "install: pkg-config (libgreen, libgreen-patch), find_package shared and static all work"
