//! Routing: the route tree and silences, with Alertmanager's semantics (matchers and inhibition sit beside it, as
//! the configuration needs them too).

pub mod silence;
pub mod tree;
