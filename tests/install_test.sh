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
cat > "$tmp/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.16)
project(use C)
find_package(green REQUIRED)
add_executable(use_shared use.c)
target_link_libraries(use_shared green::green)
add_executable(use_static use.c)
target_link_libraries(use_static green::green_static)
CM
cmake -S "$tmp" -B "$tmp/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/b" >/dev/null
"$tmp/b/use_shared"
"$tmp/b/use_static"
echo "install: pkg-config, find_package shared and static all work"
