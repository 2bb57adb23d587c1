//! The configurations of the services around the job: `tenantflow tenant-manager` and
//! `tenantflow scorer`, each its own file, read in the same layers as `run`'s.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Config;
use super::value::Count;

pub const DEFAULT_TENANT_MANAGER_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
pub const DEFAULT_TENANT_MANAGER_DATABASE: &str = "sqlite://tenants.db";
pub const DEFAULT_SCORER_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8081));

/// Scoring requests a scorer serves at once.
pub type ScorerInFlight = Count<1, 1024>;
pub const DEFAULT_SCORER_MAX_IN_FLIGHT: ScorerInFlight =
    ScorerInFlight::new(tenantflow_scorer::DEFAULT_MAX_IN_FLIGHT as u64);

/// `tenantflow tenant-manager`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantManagerConfig {
    pub listen: SocketAddr,
    pub database: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub companies_stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<PathBuf>,
    pub seed_overwrite: bool,
}

impl Default for TenantManagerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_TENANT_MANAGER_LISTEN,
            database: DEFAULT_TENANT_MANAGER_DATABASE.into(),
            api_key: None,
            companies_stream: None,
            seed: None,
            seed_overwrite: false,
        }
    }
}

impl Config for TenantManagerConfig {
    const KEYS: &'static [(&'static str, &'static str, Option<&'static str>)] = &[
        ("listen", "Address to listen on.", None),
        (
            "database",
            "`sqlite://FILE` (created and migrated on start) or `postgres://USER[:PASSWORD]@HOST:PORT/DB`.",
            None,
        ),
        (
            "api_key",
            "The key that writes (POST, PUT, DELETE) must carry in `x-api-key`; without it the API is read-only. Prefer TENANTFLOW_API_KEY to a file.",
            Some("\"change-me\""),
        ),
        (
            "companies_stream",
            "Publish every create, update and delete to this Kinesis stream (through an outbox in the database).",
            Some("\"companies\""),
        ),
        (
            "seed",
            "Load tenants at start from a CSV file of the original layout or NDJSON.",
            Some("\"companies.csv\""),
        ),
        (
            "seed_overwrite",
            "Seeding replaces tenants that exist already; by default they are kept.",
            None,
        ),
    ];
    const SECRETS: &'static [&'static str] = &["api_key"];
}

/// `tenantflow scorer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorerConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    pub listen: SocketAddr,
    pub max_in_flight: ScorerInFlight,
}

impl Default for ScorerConfig {
    fn default() -> Self {
        Self {
            model: None,
            listen: DEFAULT_SCORER_LISTEN,
            max_in_flight: DEFAULT_SCORER_MAX_IN_FLIGHT,
        }
    }
}

impl Config for ScorerConfig {
    const KEYS: &'static [(&'static str, &'static str, Option<&'static str>)] = &[
        (
            "model",
            "The model file (`tenantflow train` writes one). Required, here or as --model.",
            Some("\"model.json\""),
        ),
        ("listen", "Address to listen on.", None),
        (
            "max_in_flight",
            "Scoring requests served at once; one more gets a 503 with `Retry-After` before its body is read.",
            None,
        ),
    ];
}
