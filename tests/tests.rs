//! Weft's integration tests: real plugins built from `plugins/`, the real sled store on disk
//! and the real `weft` binary.

mod code;
mod crash;
mod flow_control;
mod hostile;
mod http;
mod inline_code;
mod limits;
mod managed;
mod platform;
mod pokemon;
mod policy;
mod runs;
mod serve;
mod store;
mod validate;
