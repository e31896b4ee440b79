//! What this binary is: its version, the source revision it was built from and the compiler that built it.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit (12 hex digits), `HERALD_REVISION` at build time, or `unknown`.
pub const REVISION: &str = env!("HERALD_REVISION");
pub const RUST_VERSION: &str = env!("HERALD_RUST_VERSION");
