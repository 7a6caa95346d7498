//! Shared test helpers: an emulator on port 0 with request helpers, the HTML pages of the
//! sign-in flows, whole authorize flows, and assertions on Microsoft's error shapes.

mod asserts;
mod emu;
mod flows;
mod pages;

pub use asserts::*;
pub use emu::*;
pub use flows::*;
pub use pages::*;
