//! Images: where a catalogue's encoded images are ([`source`]), decoding and resizing them,
//! and the decode-once [`bank`] of uint8 pixels that models read batches from.
