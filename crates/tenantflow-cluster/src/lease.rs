//! A shard's lease: the row of the lease table, with the Kinesis Client Library's
//! attributes (so that KCL tooling can read the table) and tenantflow's own.

use std::fmt;

/// The KCL's attribute names, and tenantflow's.
pub mod attr {
    /// The shard id: the table's partition key.
    pub const LEASE_KEY: &str = "leaseKey";
    /// The worker holding the lease; absent when nobody does.
    pub const LEASE_OWNER: &str = "leaseOwner";
    /// Bumped by every write: renewal, take, checkpoint, release.
    pub const LEASE_COUNTER: &str = "leaseCounter";
    /// A sequence number, or `TRIM_HORIZON`, `LATEST`, `SHARD_END`.
    pub const CHECKPOINT: &str = "checkpoint";
    /// The KPL sub-record within the checkpoint's sequence number.
    pub const CHECKPOINT_SUB_SEQUENCE: &str = "checkpointSubSequenceNumber";
    /// How many times the owner changed since the last checkpoint.
    pub const OWNER_SWITCHES: &str = "ownerSwitchesSinceCheckpoint";
    /// The shard's parents (a string set, absent when it has none).
    pub const PARENT_SHARD_IDS: &str = "parentShardId";
    /// The first hash key of the shard's range (KCL 2.x).
    pub const STARTING_HASH_KEY: &str = "startingHashKey";
    /// The last hash key of the shard's range (KCL 2.x).
    pub const ENDING_HASH_KEY: &str = "endingHashKey";
    /// tenantflow: the checkpoint manifest holding the shard's state and files.
    pub const STATE: &str = "tenantflowState";
}

/// Where a shard's reading has got to, as the KCL writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Not read yet: from the oldest record.
    TrimHorizon,
    /// Not read yet: from the records put after the reader starts.
    Latest,
    /// Read up to and including this record (and sub-record of a KPL aggregate).
    Sequence {
        /// The record's sequence number.
        sequence: String,
        /// The sub-record within it (0 for a plain record).
        sub_sequence: u64,
    },
    /// Read to its end: a closed shard whose every record was processed.
    ShardEnd,
}

impl Checkpoint {
    /// The KCL's spelling of the checkpoint attribute.
    pub fn as_attribute(&self) -> &str {
        match self {
            Checkpoint::TrimHorizon => "TRIM_HORIZON",
            Checkpoint::Latest => "LATEST",
            Checkpoint::Sequence { sequence, .. } => sequence,
            Checkpoint::ShardEnd => "SHARD_END",
        }
    }

    /// The sub-sequence number attribute.
    pub fn sub_sequence(&self) -> u64 {
        match self {
            Checkpoint::Sequence { sub_sequence, .. } => *sub_sequence,
            _ => 0,
        }
    }

    /// Parses the KCL's attributes.
    ///
    /// # Errors
    /// A value that is neither a sentinel nor a sequence number (digits).
    pub fn from_attributes(value: &str, sub_sequence: u64) -> Result<Self, String> {
        match value {
            "TRIM_HORIZON" => Ok(Checkpoint::TrimHorizon),
            "LATEST" => Ok(Checkpoint::Latest),
            "SHARD_END" => Ok(Checkpoint::ShardEnd),
            digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Checkpoint::Sequence {
                    sequence: digits.to_owned(),
                    sub_sequence,
                })
            }
            other => Err(format!(
                "checkpoint {other:?} is neither a sequence number nor TRIM_HORIZON, LATEST or SHARD_END"
            )),
        }
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checkpoint::Sequence {
                sequence,
                sub_sequence: 0,
            } => f.write_str(sequence),
            Checkpoint::Sequence {
                sequence,
                sub_sequence,
            } => write!(f, "{sequence}/{sub_sequence}"),
            other => f.write_str(other.as_attribute()),
        }
    }
}

/// A shard's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The shard id (`leaseKey`).
    pub key: String,
    /// Who holds it (`leaseOwner`); `None` when nobody does.
    pub owner: Option<String>,
    /// `leaseCounter`: every write increments it, and every write is conditional on it.
    pub counter: u64,
    /// `checkpoint` and `checkpointSubSequenceNumber`.
    pub checkpoint: Checkpoint,
    /// `ownerSwitchesSinceCheckpoint`.
    pub owner_switches: u64,
    /// `parentShardId`: the shard's parents, read to their end before it is leased.
    pub parents: Vec<String>,
    /// `startingHashKey` and `endingHashKey`, as decimal strings.
    pub hash_range: Option<(String, String)>,
    /// `tenantflowState`: the checkpoint manifest that holds this shard's state and
    /// result files (absent until the first checkpoint).
    pub state: Option<String>,
}

impl Lease {
    /// A new, unowned lease for a shard.
    pub fn new(key: impl Into<String>, checkpoint: Checkpoint) -> Self {
        Self {
            key: key.into(),
            owner: None,
            counter: 0,
            checkpoint,
            owner_switches: 0,
            parents: Vec::new(),
            hash_range: None,
            state: None,
        }
    }

    /// Whether its shard was read to its end.
    pub fn is_finished(&self) -> bool {
        self.checkpoint == Checkpoint::ShardEnd
    }

    /// Whether `worker` holds it.
    pub fn is_owned_by(&self, worker: &str) -> bool {
        self.owner.as_deref() == Some(worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_through_the_kcl_attributes() {
        for checkpoint in [
            Checkpoint::TrimHorizon,
            Checkpoint::Latest,
            Checkpoint::ShardEnd,
            Checkpoint::Sequence {
                sequence: "49590338271490256608559692538361571095921575989136588898".into(),
                sub_sequence: 3,
            },
        ] {
            let parsed =
                Checkpoint::from_attributes(checkpoint.as_attribute(), checkpoint.sub_sequence());
            assert_eq!(parsed, Ok(checkpoint));
        }
        assert!(Checkpoint::from_attributes("AT_TIMESTAMP", 0).is_err());
        assert!(Checkpoint::from_attributes("", 0).is_err());
    }
}
