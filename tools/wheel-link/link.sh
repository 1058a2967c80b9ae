#!/bin/sh
# rustc's linker for the release wheel (`make wheel`): link the extension against glibc 2.28's
# ABI (the platform of torch 2.11's wheels, manylinux_2_28), with zig's lld and zig's glibc
# 2.28 stubs (PyPI's ziglang), instead of the build machine's glibc. Only the link changes:
# every object is compiled as for `make build` (C and C++ by the system's gcc). See
# docs/getting-started.md ("Which Linux the wheel needs") and compat.cpp beside this file.
#
#   RUSTFLAGS are not used: maturin passes `-C linker=.../link.sh` to the extension's rustc
#   only (maturin build ... -- -C linker=...), so dependencies keep `make build`'s artifacts.
#
# Environment: WHEEL_ZIG (default: "python -m ziglang"), CXX (default: g++), GLIBC_TARGET (2.28),
# LINK_LOG (a file to write the final arguments to).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
zig=${WHEEL_ZIG:-python -m ziglang}
cxx=${CXX:-g++}
target=x86_64-linux-gnu.${GLIBC_TARGET:-2.28}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The few libstdc++/glibc definitions that gcc 12's headers expect of a newer platform.
"$cxx" -std=c++17 -O2 -fPIC -c "$here/compat.cpp" -o "$tmp/compat.o"

# The C++ runtime stays gcc's libstdc++ (libtorch's): zig would take -lstdc++ for its own
# libc++, so name the libraries by path. Their own symbol versions are not ours to meet.
libstdcxx=$("$cxx" -print-file-name=libstdc++.so)
libgomp=$("$cxx" -print-file-name=libgomp.so)
libgcc_s=$("$cxx" -print-file-name=libgcc_s.so.1)

set -- "$@" END
for a; do
    shift
    case $a in
        END) break ;;
        # rustc's own lld (rust-lld through gcc-ld/): zig brings its lld.
        -fuse-ld=*|-B*gcc-ld*) continue ;;
        -lstdc++) a=$libstdcxx ;;
        -lgomp) a=$libgomp ;;
        -lgcc_s) a=$libgcc_s ;;
    esac
    set -- "$@" "$a"
done
[ -n "${LINK_LOG:-}" ] && printf '%s\n' "$@" > "$LINK_LOG"
$zig cc -target "$target" "$tmp/compat.o" "$@"
