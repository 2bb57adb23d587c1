//! Enhanced fan-out consumers: registered once per stream and name, then reused.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::ConsumerStatus;

use crate::error::KinesisError;

const WAIT: Duration = Duration::from_secs(120);

/// The ARN of consumer `name` on `stream`, registering it if needed, once it is ACTIVE.
///
/// # Errors
/// A failed call, or a consumer not active within two minutes.
pub async fn register(client: &Client, stream: &str, name: &str) -> Result<String, KinesisError> {
    let summary = client
        .describe_stream_summary()
        .stream_name(stream)
        .send()
        .await
        .map_err(|e| KinesisError::from_sdk("DescribeStreamSummary", stream, e))?;
    let stream_arn = summary
        .stream_description_summary()
        .map(|d| d.stream_arn().to_owned())
        .unwrap_or_default();
    match client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name(name)
        .send()
        .await
    {
        Ok(_) => tracing::info!(stream, consumer = name, "Registered the fan-out consumer."),
        Err(e) => {
            let e = KinesisError::from_sdk("RegisterStreamConsumer", stream, e);
            if e.code() != Some("ResourceInUseException") {
                return Err(e);
            }
        }
    }
    let started = Instant::now();
    loop {
        let described = client
            .describe_stream_consumer()
            .stream_arn(&stream_arn)
            .consumer_name(name)
            .send()
            .await
            .map_err(|e| KinesisError::from_sdk("DescribeStreamConsumer", stream, e))?;
        if let Some(c) = described
            .consumer_description()
            .filter(|c| *c.consumer_status() == ConsumerStatus::Active)
        {
            return Ok(c.consumer_arn().to_owned());
        }
        if started.elapsed() > WAIT {
            return Err(KinesisError::Timeout {
                stream: stream.to_owned(),
                state: "consumer ACTIVE",
                seconds: WAIT.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
