//! Which shards a consumer reads, and when: a shard is read only after every parent it
//! has (a split's one, a merge's two) was read to its end, so each tenant's records
//! keep their order across a reshard. The decisions are pure: the consumer tells the
//! lineage what `ListShards` showed and which shard reads ended, and asks which shards
//! to start now.

use std::collections::{HashMap, HashSet};

use crate::shards::ShardInfo;

/// Where a shard starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// As the consumer was told (`latest`, a time, a checkpoint's positions): a shard
    /// that existed when the consumer started.
    Configured,
    /// At its oldest record: a shard that appeared later (a child of a reshard).
    TrimHorizon,
}

/// The shards of a stream as one consumer knows them.
#[derive(Debug, Default)]
pub struct ShardLineage {
    known: HashMap<String, ShardInfo>,
    /// Shard ids in the order `ListShards` first showed them.
    order: Vec<String>,
    finished: HashSet<String>,
    running: HashSet<String>,
    /// The shards of the first listing: they start where the consumer was told.
    initial: Option<HashSet<String>>,
    /// Only these shards are read (a worker's leases), not their children.
    only: Option<HashSet<String>>,
}

impl ShardLineage {
    /// A lineage in which `finished` (read to their end by an earlier run) are done.
    pub fn new(finished: HashSet<String>) -> Self {
        Self {
            finished,
            ..Self::default()
        }
    }

    /// Reads only `shards` (a worker's leases): no other shard, and not their children
    /// (each child has a lease of its own).
    pub fn only(mut self, shards: HashSet<String>) -> Self {
        self.only = Some(shards);
        self
    }

    /// With [`Self::only`]: every one of its shards was read to its end.
    pub fn all_ended(&self) -> bool {
        self.only
            .as_ref()
            .is_some_and(|only| only.iter().all(|id| self.finished.contains(id)))
    }

    /// What a `ListShards` showed: shards not known yet are added, in its order. The
    /// first listing's shards are the initial ones.
    pub fn listed(&mut self, shards: Vec<ShardInfo>) {
        for shard in shards {
            if !self.known.contains_key(&shard.id) {
                self.order.push(shard.id.clone());
                self.known.insert(shard.id.clone(), shard);
            }
        }
        if self.initial.is_none() {
            self.initial = Some(self.known.keys().cloned().collect());
        }
    }

    /// The shards to start now, each marked running: neither finished nor running, and
    /// no known parent unfinished (a parent past the retention period, not listed any
    /// more, holds nothing back).
    pub fn ready(&mut self) -> Vec<(ShardInfo, StartAt)> {
        let Some(initial) = &self.initial else {
            return Vec::new();
        };
        let mut ready = Vec::new();
        for id in &self.order {
            if self.finished.contains(id)
                || self.running.contains(id)
                || self.only.as_ref().is_some_and(|only| !only.contains(id))
            {
                continue;
            }
            let shard = &self.known[id];
            // A leased shard's parents were read to their end before it was leased:
            // the lease table keeps that order, across workers.
            let blocked = self.only.is_none()
                && [&shard.parent, &shard.adjacent_parent]
                    .into_iter()
                    .flatten()
                    .any(|p| self.known.contains_key(p) && !self.finished.contains(p));
            if blocked {
                continue;
            }
            let start = if initial.contains(id) {
                StartAt::Configured
            } else {
                StartAt::TrimHorizon
            };
            ready.push((shard.clone(), start));
        }
        for (shard, _) in &ready {
            self.running.insert(shard.id.clone());
        }
        ready
    }

    /// A shard was read to its end.
    pub fn finished(&mut self, id: &str) {
        self.running.remove(id);
        self.finished.insert(id.to_owned());
    }

    /// True once a listing came.
    pub fn listed_once(&self) -> bool {
        self.initial.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parent: Option<&str>, adjacent: Option<&str>) -> ShardInfo {
        ShardInfo {
            id: id.into(),
            parent: parent.map(Into::into),
            adjacent_parent: adjacent.map(Into::into),
            hash_start: "0".into(),
            hash_end: "1".into(),
            ending_sequence: None,
        }
    }

    fn ids(ready: &[(ShardInfo, StartAt)]) -> Vec<(&str, StartAt)> {
        ready.iter().map(|(s, at)| (s.id.as_str(), *at)).collect()
    }

    #[test]
    fn children_wait_for_their_parents_and_start_at_their_oldest_record() {
        let mut lineage = ShardLineage::new(HashSet::new());
        assert!(lineage.ready().is_empty(), "nothing before a listing");
        lineage.listed(vec![shard("a", None, None), shard("b", None, None)]);
        assert_eq!(
            ids(&lineage.ready()),
            [("a", StartAt::Configured), ("b", StartAt::Configured)]
        );
        assert!(
            lineage.ready().is_empty(),
            "running shards are not started twice"
        );
        // `a` splits into c and d; c and d merge into e with b.
        lineage.listed(vec![
            shard("a", None, None),
            shard("b", None, None),
            shard("c", Some("a"), None),
            shard("d", Some("a"), None),
        ]);
        assert!(lineage.ready().is_empty(), "a is still being read");
        lineage.finished("a");
        assert_eq!(
            ids(&lineage.ready()),
            [("c", StartAt::TrimHorizon), ("d", StartAt::TrimHorizon)]
        );
        lineage.listed(vec![shard("e", Some("d"), Some("b"))]);
        lineage.finished("d");
        assert!(lineage.ready().is_empty(), "e waits for both its parents");
        lineage.finished("b");
        assert_eq!(ids(&lineage.ready()), [("e", StartAt::TrimHorizon)]);
    }

    #[test]
    fn finished_shards_of_a_checkpoint_and_expired_parents_hold_nothing_back() {
        let mut lineage = ShardLineage::new(["a".to_owned()].into_iter().collect());
        // `a` is finished (from a checkpoint); `x`'s parent `gone` is not listed.
        lineage.listed(vec![
            shard("a", None, None),
            shard("c", Some("a"), None),
            shard("x", Some("gone"), None),
        ]);
        assert_eq!(
            ids(&lineage.ready()),
            [("c", StartAt::Configured), ("x", StartAt::Configured)]
        );
        assert!(lineage.listed_once());
    }

    #[test]
    fn a_leased_shard_is_read_alone_and_its_children_are_left_to_their_leases() {
        let mut lineage = ShardLineage::new(HashSet::new()).only(["a".to_owned()].into());
        lineage.listed(vec![shard("a", None, None), shard("b", None, None)]);
        assert_eq!(ids(&lineage.ready()), [("a", StartAt::Configured)]);
        assert!(!lineage.all_ended());
        lineage.listed(vec![shard("c", Some("a"), None)]);
        lineage.finished("a");
        assert!(lineage.ready().is_empty());
        assert!(lineage.all_ended());
        // The child's own lease: its parent, ended on another worker, holds nothing back.
        let mut child = ShardLineage::new(HashSet::new()).only(["c".to_owned()].into());
        child.listed(vec![shard("a", None, None), shard("c", Some("a"), None)]);
        assert_eq!(ids(&child.ready()), [("c", StartAt::Configured)]);
    }
}
