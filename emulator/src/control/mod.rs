//! What tests and demos steer the emulator with: the admin API under `/_emulator/` and the
//! fault injection it configures.

mod admin;
pub mod faults;

pub use admin::router;
