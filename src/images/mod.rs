//! Images: where a catalogue's encoded images are ([`source`]), decoding them ([`decode`]),
//! resizing them as Pillow does ([`resize`]), and the decode-once [`bank`] of uint8 pixels
//! that models read their batches from.

pub mod bank;
pub mod decode;
pub mod resize;
mod scaled;
pub mod source;

pub use bank::{BankSpec, ImageBank, OnError};
pub use decode::{decode_rgb, DecodeOptions, Rgb8, DEFAULT_MAX_PIXELS};
pub use resize::Filter;
pub use source::ImageSource;
