//! A reproducible train/test split: a seeded shuffle, the first `test_fraction` for test.

use tenantflow_core::rng::SplitMix64;

use crate::Example;

/// `(train, test)`; the same seed gives the same split.
pub fn split(
    mut rows: Vec<Example>,
    test_fraction: f64,
    seed: u64,
) -> (Vec<Example>, Vec<Example>) {
    let mut rng = SplitMix64::new(seed);
    // Fisher–Yates.
    for i in (1..rows.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        rows.swap(i, j);
    }
    let test_len = ((rows.len() as f64) * test_fraction.clamp(0.0, 1.0)).round() as usize;
    let train = rows.split_off(test_len);
    (train, rows)
}
