//! The part of `tenantflow` that is a library: the configuration files' loader (TOML,
//! validated into the typed settings of `run`, `tenant-manager` and `scorer`, with the
//! place and the reason of what is refused). The binary (`src/main.rs`) is everything
//! else; a fuzz target (`fuzz/`) links this.

pub mod config;
