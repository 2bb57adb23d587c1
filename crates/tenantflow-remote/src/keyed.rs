//! The worker's side of the async operator: records that wait for a remote answer
//! about their key, and the order they come out in.
//!
//! A record waits when its key has a request in flight (its own, or an earlier
//! record's: requests for one key are coalesced), and, in unordered emission, only
//! then; a key's records always come out in arrival order. In ordered emission every
//! record after a waiting one waits too, and records come out in arrival order.
//!
//! The queue knows nothing of requests beyond their keys: the worker starts them
//! ([`KeyedQueue::start`]), and hands each answer back ([`KeyedQueue::complete`]);
//! then [`KeyedQueue::pop_ready`] gives the records that can go on, each with its
//! key's answer.

use std::collections::{HashMap, VecDeque};

/// The order records come out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Emission {
    /// As their key's answer comes: other keys' records do not wait. A key's records
    /// keep their order.
    #[default]
    Unordered,
    /// In arrival order, whatever their key: one slow answer holds back everything
    /// after it.
    Ordered,
}

impl std::str::FromStr for Emission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "unordered" => Ok(Emission::Unordered),
            "ordered" => Ok(Emission::Ordered),
            _ => Err(format!("expected `ordered` or `unordered`, got `{s}`")),
        }
    }
}

#[derive(Debug)]
enum Status<R> {
    /// No request: the key's records wait only behind others (ordered emission).
    Idle,
    /// A request is in flight.
    Pending,
    /// Answered; kept while the key has records waiting.
    Answered(R),
}

#[derive(Debug)]
struct Key<T, R> {
    status: Status<R>,
    /// Records of the key still queued.
    queued: usize,
    /// Unordered emission: the key's own records.
    items: VecDeque<T>,
}

/// Records waiting for answers about their keys.
#[derive(Debug)]
pub struct KeyedQueue<T, R> {
    emission: Emission,
    keys: HashMap<Box<str>, Key<T, R>, foldhash::fast::RandomState>,
    /// Ordered emission: every waiting record, in arrival order.
    fifo: VecDeque<(Box<str>, T)>,
    /// Unordered emission: keys answered, whose records can go.
    ready: VecDeque<Box<str>>,
    in_flight: usize,
    queued: usize,
}

impl<T, R: Clone> KeyedQueue<T, R> {
    /// An empty queue.
    pub fn new(emission: Emission) -> Self {
        Self {
            emission,
            keys: HashMap::default(),
            fifo: VecDeque::new(),
            ready: VecDeque::new(),
            in_flight: 0,
            queued: 0,
        }
    }

    /// True when a new record of `key` must wait (be [`pushed`](Self::push)) rather
    /// than go on now.
    pub fn must_wait(&self, key: &str) -> bool {
        match self.emission {
            Emission::Unordered => self.keys.contains_key(key),
            Emission::Ordered => self.queued > 0,
        }
    }

    /// True when `key` has neither a request in flight nor an answer its records are
    /// still waiting to use: a record that needs an answer must start a request.
    pub fn needs_request(&self, key: &str) -> bool {
        self.keys
            .get(key)
            .is_none_or(|k| matches!(k.status, Status::Idle))
    }

    /// True while a request for `key` is in flight.
    pub fn is_pending(&self, key: &str) -> bool {
        self.keys
            .get(key)
            .is_some_and(|k| matches!(k.status, Status::Pending))
    }

    /// Notes that a request for `key` is now in flight. Its records (pushed before or
    /// after) wait for [`complete`](Self::complete).
    pub fn start(&mut self, key: &str) {
        let entry = self.key(key);
        debug_assert!(!matches!(entry.status, Status::Pending));
        entry.status = Status::Pending;
        self.in_flight += 1;
    }

    /// Queues a record of `key` behind the records before it.
    pub fn push(&mut self, key: &str, item: T) {
        self.queued += 1;
        match self.emission {
            Emission::Unordered => {
                let entry = self.key(key);
                entry.queued += 1;
                entry.items.push_back(item);
            }
            Emission::Ordered => {
                self.key(key).queued += 1;
                self.fifo.push_back((key.into(), item));
            }
        }
    }

    /// The answer for `key` has come.
    pub fn complete(&mut self, key: &str, answer: R) {
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        if matches!(entry.status, Status::Pending) {
            self.in_flight -= 1;
        }
        if entry.queued == 0 {
            self.keys.remove(key);
            return;
        }
        entry.status = Status::Answered(answer);
        if self.emission == Emission::Unordered {
            self.ready.push_back(key.into());
        }
    }

    /// The next record that can go on, with its key and the key's answer (none for a
    /// record that waited only behind others).
    pub fn pop_ready(&mut self) -> Option<(Box<str>, T, Option<R>)> {
        let (key, item) = match self.emission {
            Emission::Unordered => loop {
                let key = self.ready.front()?;
                let entry = self.keys.get_mut(key)?;
                match entry.items.pop_front() {
                    Some(item) => break (key.clone(), item),
                    None => {
                        self.ready.pop_front();
                    }
                }
            },
            Emission::Ordered => {
                let (key, _) = self.fifo.front()?;
                if self.is_pending(key) {
                    return None;
                }
                self.fifo.pop_front()?
            }
        };
        self.queued -= 1;
        let entry = self.keys.get_mut(&*key)?;
        entry.queued -= 1;
        let answer = match &entry.status {
            Status::Answered(answer) => Some(answer.clone()),
            Status::Idle | Status::Pending => None,
        };
        if entry.queued == 0 && !matches!(entry.status, Status::Pending) {
            self.keys.remove(&*key);
            if self.emission == Emission::Unordered {
                self.ready.pop_front();
            }
        }
        Some((key, item, answer))
    }

    /// Every record waiting: in arrival order in ordered emission, key by key (each
    /// key's in arrival order) in unordered emission.
    pub fn items(&self) -> Box<dyn Iterator<Item = &T> + '_> {
        match self.emission {
            Emission::Unordered => Box::new(self.keys.values().flat_map(|k| k.items.iter())),
            Emission::Ordered => Box::new(self.fifo.iter().map(|(_, item)| item)),
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Records waiting.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// True when nothing waits and nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.queued == 0 && self.in_flight == 0
    }

    fn key(&mut self, key: &str) -> &mut Key<T, R> {
        if !self.keys.contains_key(key) {
            self.keys.insert(
                key.into(),
                Key {
                    status: Status::Idle,
                    queued: 0,
                    items: VecDeque::new(),
                },
            );
        }
        match self.keys.get_mut(key) {
            Some(entry) => entry,
            None => unreachable!("inserted above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut KeyedQueue<u32, char>) -> Vec<(String, u32, Option<char>)> {
        std::iter::from_fn(|| queue.pop_ready())
            .map(|(k, v, a)| (k.into(), v, a))
            .collect()
    }

    fn row(key: &str, v: u32, a: Option<char>) -> (String, u32, Option<char>) {
        (key.into(), v, a)
    }

    #[test]
    fn unordered_holds_only_the_waiting_key_and_keeps_its_order() {
        let mut q = KeyedQueue::new(Emission::Unordered);
        q.start("a");
        q.push("a", 1);
        assert!(q.must_wait("a"));
        assert!(!q.must_wait("b"));
        q.push("a", 2);
        q.start("c");
        q.push("c", 3);
        assert_eq!(q.in_flight(), 2);
        assert!(drain(&mut q).is_empty());
        q.complete("c", 'C');
        assert_eq!(drain(&mut q), vec![row("c", 3, Some('C'))]);
        assert!(!q.must_wait("c"));
        q.complete("a", 'A');
        assert_eq!(
            drain(&mut q),
            vec![row("a", 1, Some('A')), row("a", 2, Some('A'))]
        );
        assert!(q.is_empty());
        assert!(!q.must_wait("a"));
    }

    #[test]
    fn ordered_holds_everything_after_a_waiting_record() {
        let mut q = KeyedQueue::new(Emission::Ordered);
        assert!(!q.must_wait("x"));
        q.start("a");
        q.push("a", 1);
        assert!(q.must_wait("b"));
        q.push("b", 2);
        q.start("c");
        q.push("c", 3);
        q.push("b", 4);
        q.complete("c", 'C');
        assert!(drain(&mut q).is_empty(), "a is first and still waits");
        q.complete("a", 'A');
        assert_eq!(
            drain(&mut q),
            vec![
                row("a", 1, Some('A')),
                row("b", 2, None),
                row("c", 3, Some('C')),
                row("b", 4, None)
            ]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn an_answer_for_a_key_with_nothing_waiting_is_dropped() {
        let mut q: KeyedQueue<u32, char> = KeyedQueue::new(Emission::Unordered);
        q.start("a");
        q.complete("a", 'A');
        assert!(q.is_empty());
        assert!(!q.must_wait("a"));
        assert!(drain(&mut q).is_empty());
    }
}
