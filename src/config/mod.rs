//! Configuration: loading (embedded default -> file -> environment), secrets, validation into `Settings`.

mod settings;

pub use settings::*;
