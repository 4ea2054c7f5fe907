//! The JSON API under `/api/v1`, one module per resource, and the routes beside it for
//! tooling: the OpenAPI document (`meta`), probes and metrics (`ops`).

pub(super) mod config;
pub(super) mod credentials;
pub(super) mod customers;
pub(super) mod instances;
pub(super) mod integrations;
pub(super) mod marketplace;
pub(super) mod meta;
pub(super) mod ops;
pub(super) mod runs;
