//! Delimited text files of interactions and id lists (CSV, headerless id lists).
//!
//! OWNER: helper B.
