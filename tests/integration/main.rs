//! Almagest's integration tests: one binary, one module per scenario, each against real
//! `almagest` processes (see `harness`).

mod harness;
mod reference;
mod t10_queries;
mod t20_slt;
mod t30_clients;
mod t40_multiprocess;
mod t50_load_errors;
