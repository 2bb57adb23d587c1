//! Routing of records to keyed workers by a hash of `companyID`.
//!
//! The hash is fixed (same key, same worker, on every run and machine), so a tenant's
//! records always meet its state, and its records keep their order.

use std::hash::BuildHasher;

/// The fixed seed of the routing hash. Changing it moves tenants between workers.
const ROUTING_SEED: u64 = 0x7e4a_47f1_0e5c_a11d;

/// The worker, in `0..workers`, that owns `company_id`.
///
/// # Panics
/// If `workers` is 0.
pub fn worker_for(company_id: &str, workers: usize) -> usize {
    assert!(workers > 0, "at least one worker");
    let hash = foldhash::fast::FixedState::with_seed(ROUTING_SEED).hash_one(company_id.as_bytes());
    ((u128::from(hash) * workers as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_keys_evenly_and_stably() {
        let mut counts = [0usize; 4];
        for i in 0..40_000 {
            let key = format!("c-{i:05}");
            let w = worker_for(&key, 4);
            assert_eq!(w, worker_for(&key, 4));
            counts[w] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }
}
