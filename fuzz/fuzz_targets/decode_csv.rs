//! The CSV record decoder, as a first line (a header allowed) and as any other line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantflow_core::decode::{Decoder, DefaultKind};

fuzz_target!(|data: &[u8]| {
    let decoder = Decoder::new(DefaultKind::Infer);
    for first_line in [true, false] {
        if let Ok(Some(record)) = decoder.decode_csv(data, first_line) {
            assert!(!record.company_id().is_empty());
        }
    }
});
