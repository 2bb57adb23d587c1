//! The Kinesis Client Library's lease protocol, as one worker runs it.
//!
//! - **Renew** every `lease_renew_interval`: a conditional write per held lease. One that
//!   fails on its condition was taken by another worker: it is lost at once. One that
//!   cannot be written (the table is unreachable) is kept until `lease_timeout` after its
//!   last renewal, since by then another worker may have taken it.
//! - **Take** every `lease_take_interval`: scan the table; a lease is available when it
//!   has no owner, or when its counter has not changed for `lease_timeout` *as seen by
//!   this worker between its own scans* (no worker compares its clock with another's).
//!   The fair share is the eligible leases over the live workers, rounded up; a worker
//!   below it takes at most `max_take_per_round` available leases, and when none is
//!   available steals at most `max_steal_per_round` from the most loaded worker, only
//!   while that one holds more than the share.
//! - **Eligible**: a lease not read to its end whose parents (in the table) all were: a
//!   child shard is leased only after its parents reached `SHARD_END`.
//! - **Checkpoint** and **release** are conditional writes too, so a worker that lost a
//!   lease (a paused "zombie" that wakes up) can neither commit a checkpoint nor
//!   release a lease that is no longer its.
//!
//! Time is a number of milliseconds from the caller's monotonic clock (`now_ms`), so the
//! protocol runs on a simulated clock in tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::error::LeaseError;
use crate::lease::{Checkpoint, Lease};
use crate::store::{Change, LeaseStore};

/// How leases are held, taken and balanced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// A lease whose counter did not change for this long may be taken (the KCL's
    /// `failoverTimeMillis`).
    pub lease_timeout: Duration,
    /// How often held leases are renewed (a third of the timeout or less).
    pub renew_interval: Duration,
    /// How often the table is scanned for leases to take.
    pub take_interval: Duration,
    /// At most this many available leases are taken per scan.
    pub max_take_per_round: usize,
    /// At most this many leases are stolen per scan (the KCL's
    /// `maxLeasesToStealAtOneTime`).
    pub max_steal_per_round: usize,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            lease_timeout: Duration::from_secs(10),
            renew_interval: Duration::from_secs(3),
            take_interval: Duration::from_secs(5),
            max_take_per_round: 4,
            max_steal_per_round: 1,
        }
    }
}

/// What one scan decided to take.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Available leases to take.
    pub take: Vec<String>,
    /// Leases to steal from the most loaded worker.
    pub steal: Vec<String>,
}

#[derive(Debug, Clone)]
struct Held {
    lease: Lease,
    renewed_at_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    counter: u64,
    changed_at_ms: u64,
}

/// One worker's leases.
pub struct LeaseCoordinator {
    worker: String,
    store: Arc<dyn LeaseStore>,
    settings: LeaseSettings,
    held: BTreeMap<String, Held>,
    seen: HashMap<String, Seen>,
    rng: fastrand::Rng,
}

impl std::fmt::Debug for LeaseCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseCoordinator")
            .field("worker", &self.worker)
            .field("held", &self.held.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LeaseCoordinator {
    /// A worker named `worker` (unique among the live ones) using `store`. `seed`
    /// orders its choices among equally good leases, so that workers racing for the
    /// same table pick different ones.
    pub fn new(
        worker: impl Into<String>,
        store: Arc<dyn LeaseStore>,
        settings: LeaseSettings,
        seed: u64,
    ) -> Self {
        Self {
            worker: worker.into(),
            store,
            settings,
            held: BTreeMap::new(),
            seen: HashMap::new(),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// This worker's name (`leaseOwner`).
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// The settings.
    pub fn settings(&self) -> &LeaseSettings {
        &self.settings
    }

    /// The leases this worker may act on at `now_ms`: held and renewed within the
    /// lease timeout.
    pub fn held(&self, now_ms: u64) -> impl Iterator<Item = &Lease> {
        let timeout = millis(self.settings.lease_timeout);
        self.held
            .values()
            .filter(move |h| now_ms.saturating_sub(h.renewed_at_ms) < timeout)
            .map(|h| &h.lease)
    }

    /// The held lease `key`, as last written by this worker.
    pub fn lease(&self, key: &str) -> Option<&Lease> {
        self.held.get(key).map(|h| &h.lease)
    }

    /// Whether `key` is held at `now_ms`.
    pub fn holds(&self, key: &str, now_ms: u64) -> bool {
        self.held(now_ms).any(|l| l.key == key)
    }

    /// Renews every held lease; the keys of the leases lost (taken by another worker, or
    /// not renewed within the timeout).
    pub async fn renew(&mut self, now_ms: u64) -> Vec<String> {
        let timeout = millis(self.settings.lease_timeout);
        let mut lost = Vec::new();
        let keys: Vec<String> = self.held.keys().cloned().collect();
        for key in keys {
            let Some(held) = self.held.get(&key) else {
                continue;
            };
            match self.store.update(&held.lease, &Change::Renew).await {
                Ok(lease) => {
                    self.held.insert(
                        key,
                        Held {
                            lease,
                            renewed_at_ms: now_ms,
                        },
                    );
                }
                Err(LeaseError::Conflict { .. }) => {
                    tracing::info!(worker = %self.worker, lease = %key, "Lease taken by another worker.");
                    self.held.remove(&key);
                    lost.push(key);
                }
                Err(error) => {
                    let stale = now_ms.saturating_sub(held.renewed_at_ms) >= timeout;
                    tracing::warn!(%error, worker = %self.worker, lease = %key, stale, "Failed to renew a lease.");
                    if stale {
                        self.held.remove(&key);
                        lost.push(key);
                    }
                }
            }
        }
        lost
    }

    /// Scans the table and takes (or steals) what [`Self::plan`] decides; the leases
    /// taken.
    ///
    /// # Errors
    /// The table could not be scanned. A lease that another worker won in the meantime
    /// is skipped, not an error.
    pub async fn take(&mut self, now_ms: u64) -> Result<Vec<Lease>, LeaseError> {
        let leases = self.store.list().await?;
        self.observe(&leases, now_ms);
        let plan = self.plan(&leases, now_ms);
        let mut taken = Vec::new();
        let change = Change::Take {
            owner: self.worker.clone(),
        };
        for key in plan.take.iter().chain(&plan.steal) {
            let Some(read) = leases.iter().find(|l| &l.key == key) else {
                continue;
            };
            match self.store.update(read, &change).await {
                Ok(lease) => {
                    tracing::info!(
                        worker = %self.worker,
                        lease = %key,
                        from = read.owner.as_deref().unwrap_or("nobody"),
                        "Took a lease."
                    );
                    self.held.insert(
                        key.clone(),
                        Held {
                            lease: lease.clone(),
                            renewed_at_ms: now_ms,
                        },
                    );
                    taken.push(lease);
                }
                Err(LeaseError::Conflict { .. }) => {
                    tracing::debug!(worker = %self.worker, lease = %key, "Another worker took the lease first.");
                }
                Err(error) => {
                    tracing::warn!(%error, worker = %self.worker, lease = %key, "Failed to take a lease.");
                }
            }
        }
        Ok(taken)
    }

    /// What to take now, given a scan of the table (after [`Self::observe`]).
    pub fn plan(&mut self, leases: &[Lease], now_ms: u64) -> Plan {
        let present: HashSet<&str> = leases.iter().map(|l| l.key.as_str()).collect();
        let finished: HashSet<&str> = leases
            .iter()
            .filter(|l| l.is_finished())
            .map(|l| l.key.as_str())
            .collect();
        let eligible: Vec<&Lease> = leases
            .iter()
            .filter(|l| {
                !l.is_finished()
                    && l.parents
                        .iter()
                        .all(|p| !present.contains(p.as_str()) || finished.contains(p.as_str()))
            })
            .collect();
        if eligible.is_empty() {
            return Plan::default();
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_owner: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut available = Vec::new();
        for lease in &eligible {
            if lease.is_owned_by(&self.worker) && self.holds(&lease.key, now_ms) {
                *counts.entry(&self.worker).or_default() += 1;
            } else if self.is_available(lease, now_ms) {
                available.push(lease.key.clone());
            } else if let Some(owner) = lease.owner.as_deref() {
                *counts.entry(owner).or_default() += 1;
                by_owner.entry(owner).or_default().push(&lease.key);
            }
        }
        counts.entry(&self.worker).or_default();
        let workers = counts.len();
        let target = eligible.len().div_ceil(workers);
        let mine = counts.get(self.worker.as_str()).copied().unwrap_or(0);
        if mine >= target {
            return Plan::default();
        }
        let need = target - mine;
        if !available.is_empty() {
            self.rng.shuffle(&mut available);
            available.truncate(need.min(self.settings.max_take_per_round));
            return Plan {
                take: available,
                steal: Vec::new(),
            };
        }
        // The most loaded other worker (the first by name among equals).
        let Some((&victim, &count)) = counts
            .iter()
            .filter(|(owner, _)| **owner != self.worker)
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        else {
            return Plan::default();
        };
        let surplus = if count > target {
            count - target
        } else if count == target && mine + 1 < target {
            1
        } else {
            0
        };
        let n = need.min(surplus).min(self.settings.max_steal_per_round);
        let mut theirs: Vec<String> = by_owner
            .get(victim)
            .map(|keys| keys.iter().map(|k| (*k).to_owned()).collect())
            .unwrap_or_default();
        self.rng.shuffle(&mut theirs);
        theirs.truncate(n);
        Plan {
            take: Vec::new(),
            steal: theirs,
        }
    }

    /// Records what a scan showed: a lease whose counter changed since the last scan
    /// was changed now, as far as this worker can tell.
    pub fn observe(&mut self, leases: &[Lease], now_ms: u64) {
        let keys: HashSet<&str> = leases.iter().map(|l| l.key.as_str()).collect();
        self.seen.retain(|k, _| keys.contains(k.as_str()));
        for lease in leases {
            let seen = self.seen.entry(lease.key.clone()).or_insert(Seen {
                counter: lease.counter,
                changed_at_ms: now_ms,
            });
            if seen.counter != lease.counter {
                *seen = Seen {
                    counter: lease.counter,
                    changed_at_ms: now_ms,
                };
            }
        }
    }

    fn is_available(&self, lease: &Lease, now_ms: u64) -> bool {
        if lease.owner.is_none() {
            return true;
        }
        self.seen.get(&lease.key).is_some_and(|seen| {
            seen.counter == lease.counter
                && now_ms.saturating_sub(seen.changed_at_ms) >= millis(self.settings.lease_timeout)
        })
    }

    /// Commits a shard's checkpoint: the conditional write of its lease row. On a
    /// conflict the lease is lost and nothing of the checkpoint may be committed.
    ///
    /// # Errors
    /// The lease is not held, was taken ([`LeaseError::Conflict`]), or the table failed.
    pub async fn checkpoint(
        &mut self,
        key: &str,
        checkpoint: Checkpoint,
        state: Option<String>,
        now_ms: u64,
    ) -> Result<Lease, LeaseError> {
        let held = self
            .held
            .get(key)
            .filter(|h| {
                now_ms.saturating_sub(h.renewed_at_ms) < millis(self.settings.lease_timeout)
            })
            .ok_or_else(|| LeaseError::NotHeld {
                key: key.to_owned(),
            })?;
        let change = Change::Checkpoint { checkpoint, state };
        match self.store.update(&held.lease, &change).await {
            Ok(lease) => {
                self.held.insert(
                    key.to_owned(),
                    Held {
                        lease: lease.clone(),
                        renewed_at_ms: now_ms,
                    },
                );
                Ok(lease)
            }
            Err(error @ LeaseError::Conflict { .. }) => {
                self.held.remove(key);
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    /// Records that a shard was read to its end (its checkpoint becomes `SHARD_END`,
    /// which lets its children be leased) and lets it go.
    ///
    /// # Errors
    /// As [`Self::checkpoint`].
    pub async fn finish(
        &mut self,
        key: &str,
        state: Option<String>,
        now_ms: u64,
    ) -> Result<Lease, LeaseError> {
        let lease = self
            .checkpoint(key, Checkpoint::ShardEnd, state, now_ms)
            .await?;
        self.held.remove(key);
        Ok(lease)
    }

    /// Lets one lease go (a graceful hand-over), so that another worker takes it at
    /// once rather than after the timeout.
    ///
    /// # Errors
    /// The lease is not held, was taken, or the table failed.
    pub async fn release(&mut self, key: &str) -> Result<(), LeaseError> {
        let held = self.held.remove(key).ok_or_else(|| LeaseError::NotHeld {
            key: key.to_owned(),
        })?;
        self.store.update(&held.lease, &Change::Release).await?;
        Ok(())
    }

    /// Lets every held lease go (a graceful stop, after the final checkpoint); the
    /// failures, which leave those leases to expire.
    pub async fn release_all(&mut self) -> Vec<LeaseError> {
        let mut errors = Vec::new();
        let keys: Vec<String> = self.held.keys().cloned().collect();
        for key in keys {
            if let Err(error) = self.release(&key).await {
                tracing::warn!(%error, worker = %self.worker, lease = %key, "Failed to release a lease; it will expire.");
                errors.push(error);
            }
        }
        errors
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryLeaseStore;
    use crate::shard_sync::{ShardSpec, sync_leases};

    const TIMEOUT_MS: u64 = 10_000;

    fn settings() -> LeaseSettings {
        LeaseSettings {
            lease_timeout: Duration::from_millis(TIMEOUT_MS),
            ..LeaseSettings::default()
        }
    }

    fn worker(name: &str, store: &MemoryLeaseStore, seed: u64) -> LeaseCoordinator {
        LeaseCoordinator::new(name, Arc::new(store.clone()), settings(), seed)
    }

    async fn table(shards: usize) -> MemoryLeaseStore {
        let store = MemoryLeaseStore::new();
        let specs: Vec<ShardSpec> = (0..shards)
            .map(|i| ShardSpec {
                id: format!("shardId-{i:012}"),
                parents: Vec::new(),
                hash_range: (i.to_string(), i.to_string()),
            })
            .collect();
        sync_leases(&store, &specs, &Checkpoint::TrimHorizon)
            .await
            .unwrap();
        store
    }

    fn keys(w: &LeaseCoordinator, now_ms: u64) -> Vec<String> {
        w.held(now_ms).map(|l| l.key.clone()).collect()
    }

    /// One round of every worker: renew, then scan and take.
    async fn round(workers: &mut [&mut LeaseCoordinator], now_ms: u64) {
        for w in workers.iter_mut() {
            w.renew(now_ms).await;
        }
        for w in workers.iter_mut() {
            w.take(now_ms).await.unwrap();
        }
    }

    /// After every worker renewed, no lease is held by two of them, and the table
    /// agrees with each.
    async fn assert_disjoint(
        store: &MemoryLeaseStore,
        workers: &mut [&mut LeaseCoordinator],
        now_ms: u64,
    ) {
        for w in workers.iter_mut() {
            w.renew(now_ms).await;
        }
        let mut all = Vec::new();
        for w in workers.iter() {
            for key in keys(w, now_ms) {
                assert_eq!(store.get(&key).unwrap().owner.as_deref(), Some(w.worker()));
                all.push(key);
            }
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a lease held twice");
    }

    fn counts(workers: &[&mut LeaseCoordinator], now_ms: u64) -> Vec<usize> {
        workers.iter().map(|w| w.held(now_ms).count()).collect()
    }

    #[tokio::test]
    async fn a_lease_is_taken_only_once_its_counter_stood_still_for_the_timeout() {
        let store = table(1).await;
        let mut a = worker("a", &store, 1);
        let mut b = worker("b", &store, 2);
        assert_eq!(
            a.take(0).await.unwrap().len(),
            1,
            "an unowned lease is taken at once"
        );
        assert!(b.take(0).await.unwrap().is_empty());
        // a renews at 3 s and 6 s: b, scanning at 5 s and 10 s, sees the counter move.
        a.renew(3_000).await;
        assert!(b.take(5_000).await.unwrap().is_empty());
        a.renew(6_000).await;
        assert!(b.take(10_000).await.unwrap().is_empty());
        // a stops renewing. Unchanged since b's scan at 10 s: not yet at 15 s, at 20 s yes.
        assert!(b.take(15_000).await.unwrap().is_empty());
        assert!(b.take(19_999).await.unwrap().is_empty());
        let taken = b.take(20_000).await.unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].owner.as_deref(), Some("b"));
        assert_eq!(taken[0].owner_switches, 1);
        // a finds out at its next renewal.
        assert_eq!(
            a.renew(21_000).await,
            vec!["shardId-000000000000".to_owned()]
        );
        assert_eq!(keys(&a, 21_000), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_worker_takes_a_few_leases_per_round() {
        let store = table(8).await;
        let mut a = worker("a", &store, 1);
        assert_eq!(a.take(0).await.unwrap().len(), 4);
        assert_eq!(a.take(1_000).await.unwrap().len(), 4);
        assert_eq!(a.held(1_000).count(), 8);
        assert!(a.take(2_000).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn workers_balance_from_one_to_three_to_two() {
        let store = table(8).await;
        let mut a = worker("a", &store, 1);
        let mut b = worker("b", &store, 2);
        let mut c = worker("c", &store, 3);
        let mut now = 0;
        for _ in 0..3 {
            now += 1_000;
            round(&mut [&mut a], now).await;
        }
        assert_eq!(counts(&[&mut a], now), vec![8]);

        // b joins: it steals one lease per round, only while a holds more than its share.
        let mut stolen_rounds = 0;
        for _ in 0..10 {
            now += 1_000;
            let before = b.held(now).count();
            round(&mut [&mut a, &mut b], now).await;
            let after = b.held(now).count();
            assert!(after <= before + 1, "more than one lease stolen in a round");
            if after > before {
                stolen_rounds += 1;
            }
            assert_disjoint(&store, &mut [&mut a, &mut b], now).await;
        }
        assert_eq!(stolen_rounds, 4);
        assert_eq!(counts(&[&mut a, &mut b], now), vec![4, 4]);

        // c joins: 8 over 3 is 3, 3, 2, and nobody steals beyond it.
        for _ in 0..10 {
            now += 1_000;
            round(&mut [&mut a, &mut b, &mut c], now).await;
            assert_disjoint(&store, &mut [&mut a, &mut b, &mut c], now).await;
        }
        let mut spread = counts(&[&mut a, &mut b, &mut c], now);
        spread.sort_unstable();
        assert_eq!(spread, vec![2, 3, 3]);

        // c stops gracefully: its leases are free at once, and a and b share them.
        assert!(c.release_all().await.is_empty());
        for key in store.list().await.unwrap() {
            assert_ne!(key.owner.as_deref(), Some("c"));
        }
        now += 1_000;
        round(&mut [&mut a, &mut b], now).await;
        assert_disjoint(&store, &mut [&mut a, &mut b], now).await;
        assert_eq!(counts(&[&mut a, &mut b], now), vec![4, 4]);
    }

    #[tokio::test]
    async fn a_dead_workers_leases_are_shared_after_the_timeout() {
        let store = table(6).await;
        let mut a = worker("a", &store, 1);
        let mut b = worker("b", &store, 2);
        let mut c = worker("c", &store, 3);
        let mut now = 0;
        for _ in 0..8 {
            now += 1_000;
            round(&mut [&mut a, &mut b, &mut c], now).await;
        }
        assert_eq!(counts(&[&mut a, &mut b, &mut c], now), vec![2, 2, 2]);
        // c dies (no release, no renewal).
        let died = now;
        while a.held(now).count() + b.held(now).count() < 6 {
            now += 1_000;
            round(&mut [&mut a, &mut b], now).await;
            assert!(
                now - died <= TIMEOUT_MS + 2_000,
                "leases not taken over in time"
            );
        }
        assert!(now - died >= TIMEOUT_MS, "taken before the timeout");
        assert_disjoint(&store, &mut [&mut a, &mut b], now).await;
        assert_eq!(counts(&[&mut a, &mut b], now), vec![3, 3]);
    }

    #[tokio::test]
    async fn a_child_is_leased_only_after_all_its_parents_ended() {
        let store = MemoryLeaseStore::new();
        let spec = |id: &str, parents: &[&str]| ShardSpec {
            id: id.into(),
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            hash_range: ("0".into(), "1".into()),
        };
        let shards = vec![
            spec("p1", &[]),
            spec("p2", &[]),
            spec("merged", &["p1", "p2"]),
            spec("split", &["p2"]),
        ];
        assert_eq!(
            sync_leases(&store, &shards, &Checkpoint::Latest)
                .await
                .unwrap(),
            4
        );
        assert_eq!(store.get("p1").unwrap().checkpoint, Checkpoint::Latest);
        assert_eq!(
            store.get("merged").unwrap().checkpoint,
            Checkpoint::TrimHorizon
        );
        assert_eq!(
            sync_leases(&store, &shards, &Checkpoint::Latest)
                .await
                .unwrap(),
            0
        );

        let mut a = worker("a", &store, 1);
        let mut now = 1_000;
        round(&mut [&mut a], now).await;
        assert_eq!(keys(&a, now), vec!["p1", "p2"]);
        a.finish("p1", None, now).await.unwrap();
        now += 1_000;
        round(&mut [&mut a], now).await;
        assert_eq!(keys(&a, now), vec!["p2"], "merged waits for p2");
        a.finish("p2", None, now).await.unwrap();
        now += 1_000;
        round(&mut [&mut a], now).await;
        assert_eq!(keys(&a, now), vec!["merged", "split"]);
    }

    #[tokio::test]
    async fn a_zombie_that_wakes_after_losing_its_lease_commits_nothing() {
        let store = table(1).await;
        let key = "shardId-000000000000";
        let mut zombie = worker("zombie", &store, 1);
        let mut heir = worker("heir", &store, 2);
        zombie.take(0).await.unwrap();
        let first = Checkpoint::Sequence {
            sequence: "100".into(),
            sub_sequence: 0,
        };
        zombie
            .checkpoint(key, first.clone(), Some("m-1".into()), 1_000)
            .await
            .unwrap();
        // The zombie pauses (a long GC, a frozen VM); the heir takes over after the timeout.
        heir.take(2_000).await.unwrap();
        assert!(heir.take(12_000).await.unwrap().len() == 1);
        // The zombie wakes still believing, for a moment, that it holds the lease: its
        // checkpoint is refused, and from then on it holds nothing.
        assert!(zombie.holds(key, 10_999));
        let late = Checkpoint::Sequence {
            sequence: "200".into(),
            sub_sequence: 0,
        };
        let refused = zombie
            .checkpoint(key, late.clone(), Some("m-2".into()), 10_999)
            .await;
        assert!(
            matches!(refused, Err(LeaseError::Conflict { .. })),
            "{refused:?}"
        );
        assert!(!zombie.holds(key, 10_999));
        assert!(matches!(
            zombie.release(key).await,
            Err(LeaseError::NotHeld { .. })
        ));
        let stored = store.get(key).unwrap();
        assert_eq!(stored.owner.as_deref(), Some("heir"));
        assert_eq!(stored.checkpoint, first);
        assert_eq!(stored.state.as_deref(), Some("m-1"));
        // The heir commits from there.
        heir.checkpoint(key, late.clone(), Some("m-2".into()), 13_000)
            .await
            .unwrap();
        assert_eq!(store.get(key).unwrap().checkpoint, late);
    }

    #[tokio::test]
    async fn an_unreachable_table_costs_the_leases_only_after_the_timeout() {
        let store = table(2).await;
        let connection = store.connection();
        let mut a = LeaseCoordinator::new("a", Arc::new(connection.clone()), settings(), 1);
        a.take(0).await.unwrap();
        connection.set_unreachable(true);
        assert!(a.renew(3_000).await.is_empty());
        assert_eq!(a.held(9_999).count(), 2);
        assert_eq!(
            a.held(10_000).count(),
            0,
            "not acted on once possibly expired"
        );
        assert!(a.take(10_000).await.is_err());
        assert!(matches!(
            a.checkpoint("shardId-000000000000", Checkpoint::ShardEnd, None, 10_000)
                .await,
            Err(LeaseError::NotHeld { .. })
        ));
        assert_eq!(a.renew(10_000).await.len(), 2);
    }
}
