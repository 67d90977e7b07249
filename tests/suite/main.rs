//! The integration suite: one test binary, so the shared helpers in `common` are compiled once
//! and every file below uses the same ones. Each module is one area of behaviour, tested as a
//! user sees it (real processes on a temporary ledger) or through the library.

mod common;

mod agent_env;
mod agents;
mod audit;
mod bad_input;
mod calibration;
mod conformance;
mod conventions;
mod daemon;
mod doctor;
mod fleet;
mod gateway;
mod gateway_cli;
mod gateway_ledger;
mod gateway_socket;
mod hardening;
mod keys;
mod layers;
mod ledger;
mod metering;
mod metrics;
mod migrations;
mod oauth;
mod pg_harness;
mod pg_store;
mod pg_tls;
mod prices;
mod processes;
mod provider_says;
mod select;
mod snapshots;
mod statusline;
mod terminal;
mod top;
mod vault_files;
mod vault_secrets;
mod waiting;
mod windows;
