//! The NDJSON record decoder (the canonical-job scanner, the flat-object scanner, the
//! serde fallback with its aliases) under every default kind: never a panic, and a
//! decoded record is one the batch can carry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantflow_core::batch::{Batch, Position};
use tenantflow_core::decode::{Decoder, DefaultKind};

fuzz_target!(|data: &[u8]| {
    for kind in [DefaultKind::Infer, DefaultKind::Job, DefaultKind::Company] {
        if let Ok(record) = Decoder::new(kind).decode_json(data) {
            assert!(!record.company_id().is_empty());
            let mut batch = Batch::with_capacity(1);
            batch.push(&record, 0, Position { source: 0, line: 1 });
            assert_eq!(batch.iter().count(), 1);
        }
    }
});
