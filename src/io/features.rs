//! McAuley's visual features (`image_features_*.b`): records of a 10-byte ASIN followed by
//! 4096 little-endian float32, memory-mapped.
//!
//! OWNER: helper A.
