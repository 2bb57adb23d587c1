//! The KPL's aggregated record format: many user records in one Kinesis record.
//!
//! ```text
//! magic F3 89 9A C2 | protobuf AggregatedRecord | MD5 of the protobuf bytes (16 bytes)
//!
//! message AggregatedRecord {
//!   repeated string partition_key_table     = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records                 = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index     = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes  data                    = 3;
//!   repeated Tag    tags                    = 4;   // skipped
//! }
//! ```
//!
//! A Kinesis record without the magic prefix, or whose MD5 does not match, is a plain
//! record (that is what the KPL's own de-aggregation does).

use md5::{Digest, Md5};

/// The prefix of an aggregated record.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const DIGEST_LEN: usize = 16;

/// A user record inside an aggregated record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRecord<'a> {
    /// Its partition key.
    pub partition_key: &'a str,
    /// Its data.
    pub data: &'a [u8],
}

/// Why an aggregated record cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed KPL aggregated record: {0}")]
pub struct KplError(&'static str);

/// The user records of `data` if it is an aggregated record; `None` if it is a plain
/// record.
///
/// # Errors
/// When the record has the prefix and a matching digest but its protobuf is invalid.
pub fn deaggregate(data: &[u8]) -> Option<Result<Vec<SubRecord<'_>>, KplError>> {
    let body = data.strip_prefix(&MAGIC)?;
    if body.len() < DIGEST_LEN {
        return None;
    }
    let (message, digest) = body.split_at(body.len() - DIGEST_LEN);
    if Md5::digest(message).as_slice() != digest {
        return None;
    }
    Some(parse_aggregated(message))
}

fn parse_aggregated(message: &[u8]) -> Result<Vec<SubRecord<'_>>, KplError> {
    let mut keys: Vec<&str> = Vec::new();
    let mut records: Vec<(u64, &[u8])> = Vec::new();
    let mut r = Reader { b: message };
    while !r.b.is_empty() {
        let (field, wire) = r.key()?;
        match (field, wire) {
            (1, 2) => keys.push(
                std::str::from_utf8(r.bytes()?)
                    .map_err(|_| KplError("partition key is not UTF-8"))?,
            ),
            (3, 2) => {
                let mut rec = Reader { b: r.bytes()? };
                let (mut key_index, mut data) = (None, None);
                while !rec.b.is_empty() {
                    match rec.key()? {
                        (1, 0) => key_index = Some(rec.varint()?),
                        (3, 2) => data = Some(rec.bytes()?),
                        (_, wire) => rec.skip(wire)?,
                    }
                }
                records.push((
                    key_index.ok_or(KplError("record without partition key index"))?,
                    data.ok_or(KplError("record without data"))?,
                ));
            }
            (_, wire) => r.skip(wire)?,
        }
    }
    records
        .into_iter()
        .map(|(index, data)| {
            let partition_key = usize::try_from(index)
                .ok()
                .and_then(|i| keys.get(i))
                .ok_or(KplError("partition key index out of range"))?;
            Ok(SubRecord {
                partition_key,
                data,
            })
        })
        .collect()
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, KplError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.b.split_first().ok_or(KplError("truncated varint"))?;
            self.b = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(KplError("varint too long"))
    }

    fn key(&mut self) -> Result<(u64, u8), KplError> {
        let key = self.varint()?;
        Ok((key >> 3, (key & 7) as u8))
    }

    fn bytes(&mut self) -> Result<&'a [u8], KplError> {
        let len = usize::try_from(self.varint()?).map_err(|_| KplError("length too large"))?;
        if len > self.b.len() {
            return Err(KplError("truncated field"));
        }
        let (value, rest) = self.b.split_at(len);
        self.b = rest;
        Ok(value)
    }

    fn skip(&mut self, wire: u8) -> Result<(), KplError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.advance(8),
            2 => self.bytes().map(drop),
            5 => self.advance(4),
            _ => Err(KplError("unsupported wire type")),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), KplError> {
        self.b = self.b.get(n..).ok_or(KplError("truncated field"))?;
        Ok(())
    }
}

/// Builds aggregated records.
#[derive(Debug, Default)]
pub struct Aggregator {
    keys: Vec<String>,
    records: Vec<u8>,
    count: usize,
}

impl Aggregator {
    /// Adds a user record.
    pub fn push(&mut self, partition_key: &str, data: &[u8]) {
        let index = match self.keys.iter().position(|k| k == partition_key) {
            Some(i) => i,
            None => {
                self.keys.push(partition_key.to_owned());
                self.keys.len() - 1
            }
        };
        let mut record = Vec::with_capacity(data.len() + 8);
        put_key(&mut record, 1, 0);
        put_varint(&mut record, index as u64);
        put_key(&mut record, 3, 2);
        put_varint(&mut record, data.len() as u64);
        record.extend_from_slice(data);
        put_key(&mut self.records, 3, 2);
        put_varint(&mut self.records, record.len() as u64);
        self.records.extend_from_slice(&record);
        self.count += 1;
    }

    /// User records added.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The size of the aggregated record built so far.
    pub fn size(&self) -> usize {
        MAGIC.len()
            + self.keys.iter().map(|k| k.len() + 3).sum::<usize>()
            + self.records.len()
            + DIGEST_LEN
    }

    /// The aggregated record, and a fresh aggregator.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut message = Vec::with_capacity(self.size());
        for key in &self.keys {
            put_key(&mut message, 1, 2);
            put_varint(&mut message, key.len() as u64);
            message.extend_from_slice(key.as_bytes());
        }
        message.extend_from_slice(&self.records);
        let digest = Md5::digest(&message);
        let mut out = Vec::with_capacity(MAGIC.len() + message.len() + DIGEST_LEN);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&message);
        out.extend_from_slice(&digest);
        *self = Self::default();
        out
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, field: u64, wire: u64) {
    put_varint(out, (field << 3) | wire);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_then_deaggregate_round_trips() {
        let mut agg = Aggregator::default();
        agg.push("c-1", b"one");
        agg.push("c-2", b"two");
        agg.push("c-1", &[0u8; 300]);
        assert_eq!(agg.len(), 3);
        let data = agg.finish();
        assert!(agg.is_empty());
        let subs = deaggregate(&data).unwrap().unwrap();
        assert_eq!(subs.len(), 3);
        assert_eq!(
            subs[0],
            SubRecord {
                partition_key: "c-1",
                data: b"one"
            }
        );
        assert_eq!(
            subs[1],
            SubRecord {
                partition_key: "c-2",
                data: b"two"
            }
        );
        assert_eq!(subs[2].data.len(), 300);
    }

    /// Bytes written by the KPL's format by hand: keys "a","b"; records (0,"x"), (1,"yz"),
    /// and one record with a tag, which is skipped.
    #[test]
    fn reads_hand_built_protobuf_with_unknown_fields() {
        let mut message = vec![0x0a, 0x01, b'a', 0x0a, 0x01, b'b'];
        message.extend_from_slice(&[0x1a, 0x05, 0x08, 0x00, 0x1a, 0x01, b'x']);
        message.extend_from_slice(&[
            0x1a, 0x0a, 0x08, 0x01, 0x1a, 0x02, b'y', b'z', 0x22, 0x02, 0x0a, 0x00,
        ]);
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&message);
        data.extend_from_slice(&Md5::digest(&message));
        let subs = deaggregate(&data).unwrap().unwrap();
        assert_eq!(
            subs,
            vec![
                SubRecord {
                    partition_key: "a",
                    data: b"x"
                },
                SubRecord {
                    partition_key: "b",
                    data: b"yz"
                }
            ]
        );
    }

    #[test]
    fn plain_records_and_bad_digests_are_not_aggregated() {
        assert!(deaggregate(br#"{"companyID":"c"}"#).is_none());
        let mut agg = Aggregator::default();
        agg.push("k", b"v");
        let mut data = agg.finish();
        let last = data.len() - 1;
        data[last] ^= 1;
        assert!(deaggregate(&data).is_none());
    }

    #[test]
    fn a_bad_protobuf_with_a_good_digest_is_an_error() {
        let message = [0x1a, 0x05, 0x08];
        let mut data = MAGIC.to_vec();
        data.extend_from_slice(&message);
        data.extend_from_slice(&Md5::digest(message));
        assert!(deaggregate(&data).unwrap().is_err());
    }
}
