//! A stream's shards, as the job reads them (ListShards).
//!
//! Apart from [`crate::admin`]: the job calls only what is here and in the consumer,
//! the writer and fan-out, never the `streams` command's create and delete; the IAM
//! policy in `deploy/` is checked against exactly that.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::Shard;

use crate::error::KinesisError;

/// A shard as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard id.
    pub id: String,
    /// Parent shard (after a split or merge).
    pub parent: Option<String>,
    /// Second parent (after a merge).
    pub adjacent_parent: Option<String>,
    /// First hash key of its range.
    pub hash_start: String,
    /// Last hash key of its range.
    pub hash_end: String,
    /// Set once the shard is closed.
    pub ending_sequence: Option<String>,
}

impl From<&Shard> for ShardInfo {
    fn from(s: &Shard) -> Self {
        let range = s.hash_key_range();
        ShardInfo {
            id: s.shard_id().to_owned(),
            parent: s.parent_shard_id().map(str::to_owned),
            adjacent_parent: s.adjacent_parent_shard_id().map(str::to_owned),
            hash_start: range
                .map(|r| r.starting_hash_key().to_owned())
                .unwrap_or_default(),
            hash_end: range
                .map(|r| r.ending_hash_key().to_owned())
                .unwrap_or_default(),
            ending_sequence: s
                .sequence_number_range()
                .and_then(|r| r.ending_sequence_number())
                .map(str::to_owned),
        }
    }
}

/// Every shard of the stream, following ListShards' pages.
///
/// # Errors
/// A failed call.
pub async fn list_shards(client: &Client, name: &str) -> Result<Vec<ShardInfo>, KinesisError> {
    let mut shards = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            Some(t) => client.list_shards().next_token(t),
            None => client.list_shards().stream_name(name),
        };
        let out = request
            .send()
            .await
            .map_err(|e| KinesisError::from_sdk("ListShards", name, e))?;
        shards.extend(out.shards().iter().map(ShardInfo::from));
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(shards);
        }
    }
}

/// How far behind the newest record of `shard` a reader at `after` (the last sequence
/// number read; `None`: nothing read yet) is, in milliseconds, as Kinesis reports it
/// (`MillisBehindLatest` of one GetRecords call that reads at most one record).
///
/// # Errors
/// A failed call.
pub async fn millis_behind(
    client: &Client,
    stream: &str,
    shard: &str,
    after: Option<&str>,
) -> Result<Option<i64>, KinesisError> {
    use aws_sdk_kinesis::types::ShardIteratorType;
    let request = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard);
    let request = match after {
        Some(sequence) => request
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(sequence),
        None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
    };
    let iterator = request
        .send()
        .await
        .map_err(|e| KinesisError::from_sdk("GetShardIterator", stream, e))?;
    let Some(iterator) = iterator.shard_iterator() else {
        return Ok(None);
    };
    let out = client
        .get_records()
        .shard_iterator(iterator)
        .limit(1)
        .send()
        .await
        .map_err(|e| KinesisError::from_sdk("GetRecords", stream, e))?;
    Ok(out.millis_behind_latest())
}
