//! [`Batch`]: decoded records on their way to one keyed worker.
//!
//! Records move between threads in batches, never one by one. A batch owns one byte
//! arena for all the strings of its records, so filling it allocates nothing per record
//! once its buffers have grown, and a drained batch is sent back to be reused. A job
//! event's line is kept whole (for its dead letter, should it become one), and its ids
//! point into it when they are written there as they are.

use std::borrow::Cow;

use crate::record::{Company, JobEvent, ProfileFields, Record};

/// Where a string of a record lies in the batch's arena.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Job {
        company_id: Span,
        user_id: Span,
        nb_jobs: u64,
        creation_date: i64,
        raw: Option<Span>,
    },
    Company {
        company_id: Span,
        industry: Span,
        revenu: i64,
        employees: i64,
        job30: i64,
        job90: i64,
        monthly_fee: f64,
        total_fee: f64,
    },
}

/// The position of a record in its source, for dead letters (and, later, checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Index of the source in the job's list of inputs.
    pub source: u32,
    /// 1-based line number in that source.
    pub line: u64,
}

/// A batch of records for one worker.
#[derive(Debug, Default)]
pub struct Batch {
    arena: String,
    items: Vec<(Item, Position)>,
}

impl Batch {
    /// An empty batch with room for `records` records.
    pub fn with_capacity(records: usize) -> Self {
        Self {
            arena: String::with_capacity(records * 24),
            items: Vec::with_capacity(records),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes held in the arena.
    pub fn arena_len(&self) -> usize {
        self.arena.len()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.arena.clear();
        self.items.clear();
    }

    /// Appends a record. A job event must have its event time resolved by the caller
    /// (`event_time`, used when the record carries none).
    ///
    /// # Panics
    /// If the arena would outgrow 4 GiB; callers flush long before (see
    /// [`Batch::arena_len`]).
    pub fn push(&mut self, record: &Record<'_>, event_time: i64, position: Position) {
        let item = match record {
            Record::Job(job) => {
                let raw = job.raw.as_deref().map(|raw| (raw, self.intern(raw)));
                Item::Job {
                    company_id: self.intern_within(&job.company_id, raw),
                    user_id: self.intern_within(&job.user_id, raw),
                    nb_jobs: job.nb_jobs,
                    creation_date: job.creation_date.unwrap_or(event_time),
                    raw: raw.map(|(_, span)| span),
                }
            }
            Record::Company(company) => {
                let p = &company.profile;
                Item::Company {
                    company_id: self.intern(&company.company_id),
                    industry: self.intern(&p.industry),
                    revenu: p.revenu,
                    employees: p.employees,
                    job30: p.job30,
                    job90: p.job90,
                    monthly_fee: p.monthly_fee,
                    total_fee: p.total_fee,
                }
            }
        };
        self.items.push((item, position));
    }

    fn intern(&mut self, s: &str) -> Span {
        let start = u32::try_from(self.arena.len()).expect("batch arena is flushed below 4 GiB");
        self.arena.push_str(s);
        Span {
            start,
            len: u32::try_from(s.len()).expect("a record is smaller than 4 GiB"),
        }
    }

    /// `s`'s span inside `outer` (a string already in the arena at `span`) when `s` is
    /// a part of it, else a copy of `s`.
    fn intern_within(&mut self, s: &str, outer: Option<(&str, Span)>) -> Span {
        if let Some((outer, span)) = outer {
            let start = (s.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
            if start <= outer.len() && s.len() <= outer.len() - start {
                return Span {
                    // Both fit in `span`, which fits in u32.
                    start: span.start + start as u32,
                    len: s.len() as u32,
                };
            }
        }
        self.intern(s)
    }

    fn str(&self, span: Span) -> &str {
        let start = span.start as usize;
        &self.arena[start..start + span.len as usize]
    }

    /// The records in order, borrowed from the batch; job events have their event time set.
    pub fn iter(&self) -> impl Iterator<Item = (Record<'_>, Position)> + '_ {
        self.items.iter().map(|(item, position)| {
            let record = match *item {
                Item::Job {
                    company_id,
                    user_id,
                    nb_jobs,
                    creation_date,
                    raw,
                } => Record::Job(JobEvent {
                    company_id: Cow::Borrowed(self.str(company_id)),
                    user_id: Cow::Borrowed(self.str(user_id)),
                    nb_jobs,
                    creation_date: Some(creation_date),
                    raw: raw.map(|span| Cow::Borrowed(self.str(span))),
                }),
                Item::Company {
                    company_id,
                    industry,
                    revenu,
                    employees,
                    job30,
                    job90,
                    monthly_fee,
                    total_fee,
                } => Record::Company(Company {
                    company_id: Cow::Borrowed(self.str(company_id)),
                    profile: ProfileFields {
                        industry: Cow::Borrowed(self.str(industry)),
                        revenu,
                        employees,
                        job30,
                        job90,
                        monthly_fee,
                        total_fee,
                    },
                }),
            };
            (record, *position)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Decoder, DefaultKind};

    #[test]
    fn records_come_back_as_pushed_with_event_time_resolved() {
        let decoder = Decoder::new(DefaultKind::Infer);
        let lines: [&[u8]; 2] = [
            br#"{"companyID":"c","industry":"it","revenu":1,"employees":2,"job30":3,"job90":4,"monthlyFee":5.5,"totalFee":6}"#,
            br#"{"companyID":"c","userID":"u","nbJobs":7}"#,
        ];
        let mut batch = Batch::with_capacity(2);
        for (i, line) in lines.iter().enumerate() {
            let record = decoder.decode_json(line).unwrap();
            batch.push(
                &record,
                99,
                Position {
                    source: 0,
                    line: i as u64 + 1,
                },
            );
        }
        let back: Vec<_> = batch.iter().collect();
        assert_eq!(back[0].0, decoder.decode_json(lines[0]).unwrap());
        let Record::Job(job) = &back[1].0 else {
            panic!("not a job")
        };
        assert_eq!((job.nb_jobs, job.creation_date), (7, Some(99)));
        assert_eq!(back[1].1, Position { source: 0, line: 2 });
        batch.clear();
        assert!(batch.is_empty());
    }

    #[test]
    fn a_job_events_line_comes_back_whole_and_its_ids_are_not_copied_twice() {
        let decoder = Decoder::new(DefaultKind::Infer);
        let plain = r#"{"companyID":"c-1", "userID":"u","nbJobs":7}"#;
        let escaped = r#"{"companyID":"c\u002d2","userID":"u","nbJobs":1}"#;
        let mut batch = Batch::with_capacity(2);
        for (i, line) in [plain, escaped].into_iter().enumerate() {
            let mut record = decoder.decode_json(line.as_bytes()).unwrap();
            if let Record::Job(job) = &mut record {
                job.raw = Some(Cow::Borrowed(line));
            }
            let arena = batch.arena_len();
            batch.push(
                &record,
                0,
                Position {
                    source: 0,
                    line: i as u64,
                },
            );
            let grown = batch.arena_len() - arena;
            // The first line's ids are in it; the second's id is unescaped, so copied.
            if i == 0 {
                assert_eq!(grown, line.len(), "{line}");
            } else {
                assert!(grown >= line.len() + "c-2".len(), "{line}");
            }
        }
        let back: Vec<_> = batch.iter().collect();
        let ids: Vec<_> = back
            .iter()
            .map(|(r, _)| match r {
                Record::Job(job) => (
                    job.company_id.to_string(),
                    job.raw.as_deref().map(str::to_owned),
                ),
                Record::Company(_) => panic!("not a job"),
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("c-1".to_owned(), Some(plain.to_owned())),
                ("c-2".to_owned(), Some(escaped.to_owned())),
            ]
        );
    }
}
