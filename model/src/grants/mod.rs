//! Grants: what a plugin may reach, as pure data with the matching rules. The host enforces
//! them on every request; validation checks them against manifests and credentials.

pub mod http;
pub mod s3;
