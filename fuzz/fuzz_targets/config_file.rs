//! The configuration files' loader: TOML into the settings of `run`, `tenant-manager`
//! and `scorer` (types, bounds, URLs, durations, sizes); refused text gets a place and
//! a reason, accepted text is written back as the effective configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantflow_cli::config::run::RunConfig;
use tenantflow_cli::config::service::{ScorerConfig, TenantManagerConfig};
use tenantflow_cli::config::{Config, parse};

fn load<T: Config>(text: &str) {
    match parse::<T>(text) {
        Ok(config) => {
            let _ = tenantflow_cli::config::effective(&config);
        }
        Err((_, message)) => assert!(!message.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    load::<RunConfig>(text);
    load::<TenantManagerConfig>(text);
    load::<ScorerConfig>(text);
});
