//! Delimited text files of interactions (CSV, TSV, ...) and headerless id lists.
//!
//! Why here and not in pandas: a rating file of 7.8M lines must never become 7.8M Python
//! objects, and its filters (minimum rating, drop -1, keep some items) must run while reading.
//! The file is memory-mapped. When its data has no quote character it is cut at line ends into
//! chunks parsed in parallel (rayon); otherwise one quote-aware pass reads it (RFC 4180: quoted
//! fields, doubled quotes, delimiters and line breaks inside quotes). Both give the same rows
//! in file order. CRLF, a missing final newline and a UTF-8 BOM are accepted.
//!
//! Nothing is dropped silently: every row a filter removes is counted in [`CsvReport`]. Errors
//! name the file, the line (1-based, physical lines of the file), the column and the value.
//!
//! # Where things are
//! * `options`: [`CsvOptions`] (what to read, which rows to keep) and [`CsvReport`].
//! * `columns`: ids as read ([`IdColumn`], [`StrColumn`]) and one parsed id.
//! * `layout`: column positions, names and id kinds from the header (or first line).
//! * `rules`: one record parsed and filtered; the rows of a chunk.
//! * `scan`: the parallel quote-free pass and the sequential quote-aware one.
//! * `records`: the RFC 4180 record reader.
//! * `read`: [`read_csv`] into a [`CsvTable`]; `interactions`: [`read_interactions`].
//! * `id_list`: [`read_id_list`]; `write`: [`write_int_csv`]; `text`: byte-level helpers.

mod columns;
mod id_list;
mod interactions;
mod layout;
mod options;
mod read;
mod records;
mod rules;
mod scan;
mod text;
mod write;

pub use columns::{IdColumn, StrColumn};
pub use id_list::read_id_list;
pub use interactions::read_interactions;
pub use options::{Col, CsvOptions, CsvReport, IdSet, IdType};
pub use read::{read_csv, CsvTable};
pub use write::write_int_csv;

#[cfg(test)]
mod tests;
