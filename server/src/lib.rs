//! The Almagest server as a library: the front ends (pgwire, TAP/UWS over HTTP), the
//! cluster roles and the standalone cluster, the configuration model, the users and tokens
//! files, and the catalog generator. The `almagest` binary (`main.rs`) is the command line
//! over these; the integration tests start clusters through the same functions.

pub mod cluster;
pub mod config;
pub mod gen;
pub mod http;
pub mod logtext;
pub mod pgwire;
pub mod tap;
pub mod tls;
pub mod users;
