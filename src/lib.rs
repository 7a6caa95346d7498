//! Gangway: onboard a customer's Microsoft Entra ID tenant by invitation and consent.

pub mod audit;
pub mod config;
pub mod crypto;
pub mod db;
pub mod format;
pub mod graph;
pub mod identity;
pub mod invitations;
pub mod secret;
pub mod tenants;
pub mod app;
pub mod operators;
pub mod web;
pub mod cli;
pub mod demo;
pub mod telemetry;
