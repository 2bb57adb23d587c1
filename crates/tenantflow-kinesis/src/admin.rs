//! Stream administration: create, describe, delete, and wait for the state.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::StreamStatus;

use crate::error::KinesisError;
pub use crate::shards::{ShardInfo, list_shards};

/// How long to wait for a stream to become active or to disappear.
const WAIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

/// A stream's state and shards.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    /// The stream's name.
    pub name: String,
    /// `ACTIVE`, `CREATING`, `UPDATING`, `DELETING`.
    pub status: String,
    /// Every shard, open and closed, in the service's order.
    pub shards: Vec<ShardInfo>,
}

/// Creates `name` with `shards` shards and waits until it is active. An existing stream
/// is left as it is (and waited for).
///
/// # Errors
/// A failed call, or a stream that does not become active in time.
pub async fn create_stream(client: &Client, name: &str, shards: i32) -> Result<(), KinesisError> {
    match client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) => {
            let e = KinesisError::from_sdk("CreateStream", name, e);
            if e.code() != Some("ResourceInUseException") {
                return Err(e);
            }
        }
    }
    wait_active(client, name).await
}

/// Waits until the stream is `ACTIVE`.
///
/// # Errors
/// A failed call, or the stream not active within two minutes.
pub async fn wait_active(client: &Client, name: &str) -> Result<(), KinesisError> {
    let started = Instant::now();
    loop {
        let out = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .map_err(|e| KinesisError::from_sdk("DescribeStreamSummary", name, e))?;
        let active = out
            .stream_description_summary()
            .is_some_and(|d| *d.stream_status() == StreamStatus::Active);
        if active {
            return Ok(());
        }
        if started.elapsed() > WAIT {
            return Err(KinesisError::Timeout {
                stream: name.to_owned(),
                state: "ACTIVE",
                seconds: WAIT.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The stream's status and shards.
///
/// # Errors
/// A failed call.
pub async fn describe_stream(client: &Client, name: &str) -> Result<StreamInfo, KinesisError> {
    let out = client
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .map_err(|e| KinesisError::from_sdk("DescribeStreamSummary", name, e))?;
    let status = out
        .stream_description_summary()
        .map(|d| d.stream_status().as_str().to_owned())
        .unwrap_or_default();
    Ok(StreamInfo {
        name: name.to_owned(),
        status,
        shards: list_shards(client, name).await?,
    })
}

/// Deletes the stream and waits until it is gone. A missing stream is not an error.
///
/// # Errors
/// A failed call, or a stream still there after two minutes.
pub async fn delete_stream(client: &Client, name: &str) -> Result<(), KinesisError> {
    if let Err(e) = client
        .delete_stream()
        .stream_name(name)
        .enforce_consumer_deletion(true)
        .send()
        .await
    {
        let e = KinesisError::from_sdk("DeleteStream", name, e);
        if e.code() == Some("ResourceNotFoundException") {
            return Ok(());
        }
        return Err(e);
    }
    let started = Instant::now();
    loop {
        match client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
        {
            Err(e) => {
                let e = KinesisError::from_sdk("DescribeStreamSummary", name, e);
                if e.code() == Some("ResourceNotFoundException") {
                    return Ok(());
                }
                return Err(e);
            }
            Ok(_) if started.elapsed() > WAIT => {
                return Err(KinesisError::Timeout {
                    stream: name.to_owned(),
                    state: "deleted",
                    seconds: WAIT.as_secs(),
                });
            }
            Ok(_) => tokio::time::sleep(POLL).await,
        }
    }
}
