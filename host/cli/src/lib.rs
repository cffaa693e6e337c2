//! The `udp-echo` CLI's reusable parts, as a library so tests and fuzz targets reach them.

pub mod parse;
