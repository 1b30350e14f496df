//! The built-in matchmaker: a rule-driven matchmaker configured from a MatchmakingPool's queues.
//!
//! - [`core`]: the matching core of one queue (pure): oldest ticket first, a window that widens
//!   with the wait, skill-sorted candidates per region within the latency limit, parties whole.
//! - [`teams`]: team balancing (exact for small matches, a heuristic above).
//! - [`config`]: the configuration documents the MatchmakingPool controller writes.
//! - [`engine`]: every queue of every tenant, tickets, matches, backfills, limits (no I/O).
//! - [`metrics`]: Prometheus metrics.
//! - [`api`]: the HTTP/JSON API; [`service`]: reload, matching thread and server.
//!
//! The binary is `src/bin/matchmaker.rs`; the API is documented in `docs/matchmaker-api.md`.

pub mod api;
pub mod config;
pub mod core;
pub mod engine;
pub mod metrics;
pub mod service;
pub mod teams;

#[cfg(test)]
mod render_tests;
