//! The KPL aggregate reader, given the bytes as they come (almost never a valid digest)
//! and framed with the magic and a valid MD5, so that the protobuf parser is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};
use tenantflow_kinesis::kpl::deaggregate;

fuzz_target!(|data: &[u8]| {
    let _ = deaggregate(data);
    let mut framed = vec![0xf3, 0x89, 0x9a, 0xc2];
    framed.extend_from_slice(data);
    framed.extend_from_slice(&Md5::digest(data));
    if let Some(Ok(records)) = deaggregate(&framed) {
        for record in records {
            assert!(record.data.len() <= data.len());
        }
    }
});
