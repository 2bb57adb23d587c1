//! End-to-end tests of the `tenantflow` binary: one integration test binary.
#![allow(clippy::unwrap_used)]

mod bad_input;
mod common;
mod fault_proxy;
mod inputs;
mod kinesis;
mod reference;
mod upstream;
mod w1;
