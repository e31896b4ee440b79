//! Herald: an alert-routing daemon. This crate root wires the modules together; `run` is the one entry point.
#![forbid(unsafe_code)]

pub mod alert;
pub mod clock;
pub mod config;
pub mod ingest;
pub mod store;
