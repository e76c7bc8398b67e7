//! Almagest's integration tests: one binary, one module per scenario, each against real
//! `almagest` processes (see `harness`).

mod harness;
mod reference;
mod slt;
mod t10_queries;
mod t20_slt;
mod t25_upload_sessions;
mod t30_clients;
mod t35_access;
mod t36_pg_auth;
mod t38_grpc_secret;
mod t40_multiprocess;
mod t41_tls;
mod t50_load_errors;
mod t51_names;
mod t52_load_sweep;
mod t60_tap_sync;
mod t70_tap_schema;
mod t80_jobs;
mod t90_tap_clients;
mod t92_sky_joins;
mod t93_director_index;
mod t94_director_child;
mod t95_fuzz;
mod t96_nesting;
mod t97_cancel;
