//! The emulator's own test suite: real HTTP on loopback against an in-process emulator.

mod admin;
mod admin_consent;
mod app_writes;
mod applications;
mod authorize;
mod certificates;
mod claims;
mod cli;
mod delta;
mod device_code;
mod exposed_api;
mod faults;
mod graph;
mod helpers;
mod memberships;
mod msal;
mod oidc;
mod service_principals;
mod subscriptions;
mod throttle;
mod token;
mod user_sign_in;
