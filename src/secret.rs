//! A string that must never be printed: secrets, tokens, passwords.

pub use crate::identity::Secret;
