//! The dead-letter reader of a re-drive (`run --input OUTPUT/_rejected`): a line of a
//! dead-letter file, possibly edited by hand.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenantflow_core::dead_letter::Redriven;

fuzz_target!(|data: &[u8]| {
    if let Ok(letter) = Redriven::parse(data) {
        let _ = letter.is_json();
    }
});
