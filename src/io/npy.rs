//! numpy's `.npy` container: the magic, the version, the header dict.
