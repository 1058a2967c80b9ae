// Linked into the release wheel's extension by link.sh (never into `make build`'s).
//
// The C++ wrapper of tch (torch-sys's libtch) is compiled by the system's g++ (Debian 12: gcc 12)
// against libstdc++'s headers of that compiler. Those headers make it call three things that
// the platform of torch 2.11's wheels (manylinux_2_28: glibc 2.28, libstdc++ of gcc 8) lacks:
//
//   __libc_single_threaded            glibc 2.32   (ext/atomicity.h, shared_ptr reference counts)
//   std::__throw_bad_array_new_length GLIBCXX_3.4.29 (std::allocator<T>::allocate, gcc 11)
//   basic_ostringstream<char>()       GLIBCXX_3.4.26 (the default constructor, gcc 9)
//
// This file defines them in the extension itself, as gcc-toolset's libstdc++_nonshared.a does
// for the manylinux images: a definition in an object of the link wins over the shared
// libraries', so no versioned import is made. rustc's version script exports only the Rust
// side's entry points (PyInit__core and a few extern "C" functions of tch and bzip2) and keeps
// everything else local, so these definitions are seen by nothing outside the extension.
#include <new>
#include <sstream>

extern "C" {
// 0: "the process may have several threads", so libstdc++'s inline code always uses atomic
// reference counts (what it did before glibc 2.32 in a process that links libpthread).
__attribute__((visibility("hidden"))) char __libc_single_threaded = 0;
}

namespace std {
// As libstdc++'s functexcept.cc defines it.
void __throw_bad_array_new_length() { throw bad_array_new_length(); }
}  // namespace std

// The header defines the constructor inline but declares the class an explicit instantiation
// (extern template), so callers import libstdc++'s copy: instantiate it here instead.
template std::basic_ostringstream<char>::basic_ostringstream();
