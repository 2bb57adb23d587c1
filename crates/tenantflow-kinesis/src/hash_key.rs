//! Kinesis' hash keys: a record goes to the shard whose hash-key range holds the MD5 of
//! its partition key, read as a 128-bit unsigned integer (big-endian). With companyID as
//! the partition key, a tenant's records live in one shard, and the shard that owns a
//! tenant's state is the one whose range holds its hash key.

use md5::{Digest, Md5};

/// The hash key of a partition key.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// A shard's hash-key range, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashRange {
    /// The first hash key.
    pub start: u128,
    /// The last hash key.
    pub end: u128,
}

impl HashRange {
    /// Every hash key: the range of a stream's only shard.
    pub const ALL: HashRange = HashRange {
        start: 0,
        end: u128::MAX,
    };

    /// The range from Kinesis' decimal strings.
    ///
    /// # Errors
    /// An end that is not a 128-bit decimal number, or a start after the end.
    pub fn parse(start: &str, end: &str) -> Result<Self, String> {
        let number = |s: &str| {
            s.parse::<u128>()
                .map_err(|_| format!("hash key {s:?} is not a 128-bit decimal number"))
        };
        let range = HashRange {
            start: number(start)?,
            end: number(end)?,
        };
        if range.start > range.end {
            return Err(format!("hash-key range {start}..{end} is empty"));
        }
        Ok(range)
    }

    /// Whether the range holds `key`.
    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }

    /// Whether the range holds the hash key of `partition_key`.
    pub fn holds(&self, partition_key: &str) -> bool {
        self.contains(hash_key(partition_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keys_are_the_md5_read_big_endian() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(hash_key(""), 0xd41d_8cd9_8f00_b204_e980_0998_ecf8_427e);
        let low = HashRange::parse("0", "170141183460469231731687303715884105727").unwrap();
        let high = HashRange::parse(
            "170141183460469231731687303715884105728",
            "340282366920938463463374607431768211455",
        )
        .unwrap();
        assert_eq!(high.end, u128::MAX);
        for key in ["c-00001", "c-00002", "acme", ""] {
            assert!(
                low.holds(key) != high.holds(key),
                "{key} in exactly one half"
            );
        }
        assert!(HashRange::parse("5", "4").is_err());
        assert!(HashRange::parse("-1", "4").is_err());
        assert!(HashRange::parse("0", "340282366920938463463374607431768211456").is_err());
    }
}
