//! End-to-end tests of the `tenantflow` binary: one integration test binary.
#![allow(clippy::unwrap_used)]

mod admin;
mod bad_input;
mod common;
mod config;
mod corpus;
mod crash;
mod deploy;
mod fault_http;
mod fault_proxy;
mod faults;
mod hostile;
mod inputs;
mod kinesis;
mod leases;
mod leases_profiles;
mod lookup;
mod original;
mod readme;
mod redrive;
mod reference;
mod s3;
mod scoring;
mod stand_ins;
mod train;
mod upstream;
mod w1;
