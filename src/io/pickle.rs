//! The pickle stream of numpy object arrays (protocols 2 to 5), read without executing it.
