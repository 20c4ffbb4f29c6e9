# Cross-compile for aarch64 Linux with Debian's cross compiler (gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross) and run the tests under qemu-user:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake
# Target libraries (cmocka, optionally liburing) come from Debian multiarch packages
# (dpkg --add-architecture arm64; apt-get install libcmocka-dev:arm64), which install
# into /usr/lib/aarch64-linux-gnu and /usr/include[/aarch64-linux-gnu].
#
# No CMAKE_SYSROOT: --sysroot=/usr/aarch64-linux-gnu would hide the multiarch
# directories, which live in the real root. The Debian cross gcc already searches both
# /usr/aarch64-linux-gnu and the multiarch directories.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(GREEN_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${GREEN_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${GREEN_CROSS_TRIPLE}-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE ${GREEN_CROSS_TRIPLE})

# find_library/find_path look only in the cross libc tree and in the multiarch
# directories (/ is needed as a root for /usr/lib/aarch64-linux-gnu and
# /usr/include/aarch64-linux-gnu); programs (pkg-config, qemu) come from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${GREEN_CROSS_TRIPLE} /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# With / as a root, make sure the arm64 directories win over anything generic.
list(APPEND CMAKE_LIBRARY_PATH /usr/lib/${GREEN_CROSS_TRIPLE} /usr/${GREEN_CROSS_TRIPLE}/lib)
list(APPEND CMAKE_INCLUDE_PATH /usr/include/${GREEN_CROSS_TRIPLE} /usr/${GREEN_CROSS_TRIPLE}/include)
list(REMOVE_DUPLICATES CMAKE_LIBRARY_PATH)
list(REMOVE_DUPLICATES CMAKE_INCLUDE_PATH)

# pkg-config: only the arm64 .pc files (never the host's x86-64 ones). The toolchain
# file is read again on every (re)configure, so this holds for later cmake runs too.
set(ENV{PKG_CONFIG_LIBDIR}
    "/usr/lib/${GREEN_CROSS_TRIPLE}/pkgconfig:/usr/${GREEN_CROSS_TRIPLE}/lib/pkgconfig:/usr/share/pkgconfig")
unset(ENV{PKG_CONFIG_PATH})
unset(ENV{PKG_CONFIG_SYSROOT_DIR})

# ctest (and try_run) run target programs through qemu. -L makes the cross ld.so
# (/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1) the interpreter; LD_LIBRARY_PATH
# makes it load the libc of the same cross package. Without it, ld.so finds the
# multiarch libc6:arm64 (pulled in by libcmocka0:arm64) in /lib/aarch64-linux-gnu first:
# a different glibc build than the ld.so, whose private ABI (struct rtld_global) does
# not match -- pthread_create and fork then loop forever walking the stack lists.
set(CMAKE_CROSSCOMPILING_EMULATOR
    "qemu-aarch64;-L;/usr/${GREEN_CROSS_TRIPLE};-E;LD_LIBRARY_PATH=/usr/${GREEN_CROSS_TRIPLE}/lib")
# tests/CMakeLists.txt adds each test as ${GREEN_TEST_WRAPPER} $<TARGET_FILE:...>, and
# CMake prepends CMAKE_CROSSCOMPILING_EMULATOR only when the command is a bare target
# name, so hand the emulator to the tests as their wrapper (unless one is given with -D).
set(GREEN_TEST_WRAPPER "${CMAKE_CROSSCOMPILING_EMULATOR}" CACHE STRING
    "command prefix for every test (;-separated)")
