//! Routing: matchers, the route tree, inhibition, time intervals and silences, with Alertmanager's semantics.

pub mod inhibit;
pub mod matcher;
pub mod silence;
pub mod tree;
