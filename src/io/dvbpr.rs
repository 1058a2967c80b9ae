//! The DVBPR `*ImgPartitioned.npy` data sets.
