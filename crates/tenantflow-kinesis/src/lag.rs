//! How far behind each shard's reader is, as Kinesis reports it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One shard's lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardLag {
    /// `MillisBehindLatest` of the shard's last successful read.
    pub millis_behind: i64,
    /// The shard has been read to its end.
    pub ended: bool,
}

/// The lag of every shard a consumer reads, shared with whoever reports it. Written at
/// most once per GetRecords call or fan-out event (a few times a second per shard).
#[derive(Debug, Clone, Default)]
pub struct ShardLags(Arc<Mutex<BTreeMap<String, ShardLag>>>);

impl ShardLags {
    /// Whether `other` is this very set (a clone of it), not one with the same content.
    pub fn same(&self, other: &ShardLags) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Records the lag of `shard` after a read.
    pub fn set(&self, shard: &str, millis_behind: i64) {
        let mut lags = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match lags.get_mut(shard) {
            Some(lag) => lag.millis_behind = millis_behind,
            None => {
                lags.insert(
                    shard.to_owned(),
                    ShardLag {
                        millis_behind,
                        ended: false,
                    },
                );
            }
        }
    }

    /// Marks `shard` read to its end: nothing more behind it.
    pub fn ended(&self, shard: &str) {
        let mut lags = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lags.insert(
            shard.to_owned(),
            ShardLag {
                millis_behind: 0,
                ended: true,
            },
        );
    }

    /// Every shard seen, by id.
    pub fn read(&self) -> Vec<(String, ShardLag)> {
        let lags = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        lags.iter().map(|(id, lag)| (id.clone(), *lag)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lag_of_each_shard_and_ends() {
        let lags = ShardLags::default();
        lags.set("shardId-1", 5_000);
        lags.set("shardId-0", 10);
        lags.set("shardId-1", 0);
        lags.ended("shardId-0");
        assert_eq!(
            lags.read(),
            [
                (
                    "shardId-0".to_owned(),
                    ShardLag {
                        millis_behind: 0,
                        ended: true
                    }
                ),
                (
                    "shardId-1".to_owned(),
                    ShardLag {
                        millis_behind: 0,
                        ended: false
                    }
                ),
            ]
        );
    }
}
