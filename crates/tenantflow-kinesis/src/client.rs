//! The Kinesis client, configured by the standard AWS chain.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
pub use aws_sdk_kinesis::Client;

/// A client configured from the environment: region, credentials and profiles from the
/// standard chain, and `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_KINESIS` for a local
/// server. The SDK's own retries are off: every retry decision is ours
/// ([`crate::error::classify`] and [`crate::backoff::Backoff`]), so throttling back-off
/// follows the service's limits and is counted.
pub async fn connect() -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    Client::new(&config)
}
