//! The built-in generator: a seeded, W1-like workload as NDJSON lines.
//!
//! Like `bench/gen_workload.py` (not byte for byte): one company record per tenant
//! first, then job events of Zipf-skewed tenants (exponent 1.1, hot tenants spread over
//! the id space), about 0.5% company updates, about 5% late events (up to an hour
//! behind), spanning about 180 days from 2026-01-01. Industries are those of the
//! original system plus one no model lists. Deterministic: same config, same bytes.
//!
//! It produces text rather than records on purpose: generated data then takes the same
//! decode path as files and streams, so the default run exercises the whole job.

use std::io::{self, Read, Write};

use tenantflow_core::rng::SplitMix64;

const START_TS: i64 = 1_767_225_600_000;
const SPAN_MS: f64 = 180.0 * 86_400_000.0;
const LATE_MAX_MS: f64 = 3_600_000.0;
const ZIPF_S: f64 = 1.1;
const UPDATE_FRACTION: f64 = 0.005;
const LATE_FRACTION: f64 = 0.05;
const USERS: f64 = 100_000.0;
const INDUSTRIES: [&str; 10] = [
    "gov",
    "health",
    "retail",
    "travel",
    "energy",
    "IT",
    "finance",
    "consulting",
    "service",
    "agriculture",
];
/// Bytes generated per refill.
const REFILL: usize = 1 << 16;

/// The size and seed of a generated workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Lines after the company block: job events plus company updates.
    pub events: u64,
    /// Number of tenants (at least 1).
    pub companies: u32,
    /// The seed.
    pub seed: u64,
}

/// Events of the embedded default run.
pub const DEFAULT_EVENTS: u64 = 1_000_000;
/// Tenants of the embedded default run.
pub const DEFAULT_COMPANIES: u32 = 10_000;
/// The seed of the embedded default run.
pub const DEFAULT_SEED: u64 = 42;

impl Default for GeneratorConfig {
    /// The embedded default: a million events over 10,000 tenants, seed 42.
    fn default() -> Self {
        Self {
            events: DEFAULT_EVENTS,
            companies: DEFAULT_COMPANIES,
            seed: DEFAULT_SEED,
        }
    }
}

/// SplitMix64, drawn as floats.
struct Rng(SplitMix64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0.unit()
    }

    fn below(&mut self, n: u64) -> u64 {
        ((self.next_f64() * n as f64) as u64).min(n.saturating_sub(1))
    }
}

/// The generator, read as a byte stream of NDJSON lines.
pub struct Generator {
    rng: Rng,
    companies: u32,
    next_company: u32,
    events_left: u64,
    cumulative: Vec<f64>,
    rank_to_company: Vec<u32>,
    industry: Vec<u8>,
    revenu: Vec<u32>,
    step2: f64,
    max_ts: i64,
    buf: Vec<u8>,
    pos: usize,
}

impl Generator {
    /// A generator for `config`.
    pub fn new(config: GeneratorConfig) -> Self {
        let n = config.companies.max(1);
        let mut rng = Rng(SplitMix64::new(config.seed));
        let mut cumulative = Vec::with_capacity(n as usize);
        let mut acc = 0.0;
        for k in 1..=n {
            acc += 1.0 / f64::from(k).powf(ZIPF_S);
            cumulative.push(acc);
        }
        let mut rank_to_company: Vec<u32> = (0..n).collect();
        for i in (1..n as usize).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            rank_to_company.swap(i, j);
        }
        let industry = (0..n)
            .map(|_| rng.below(INDUSTRIES.len() as u64) as u8)
            .collect();
        let revenu = (0..n)
            .map(|_| 50_000 + rng.below(19_950_000) as u32)
            .collect();
        let on_time = config.events as f64 * (1.0 - (1.0 - UPDATE_FRACTION) * LATE_FRACTION);
        Self {
            rng,
            companies: n,
            next_company: 0,
            events_left: config.events,
            cumulative,
            rank_to_company,
            industry,
            revenu,
            step2: 2.0 * SPAN_MS / on_time.max(1.0),
            max_ts: START_TS,
            buf: Vec::with_capacity(REFILL + 512),
            pos: 0,
        }
    }

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        while self.buf.len() < REFILL {
            if self.next_company < self.companies {
                let c = self.next_company;
                self.next_company += 1;
                self.company_line(c);
            } else if self.events_left > 0 {
                self.events_left -= 1;
                self.event_line();
            } else {
                break;
            }
        }
    }

    fn company_line(&mut self, c: u32) {
        let employees = 1 + self.rng.below(2000);
        let job30 = self.rng.below(100);
        let job90 = job30 + self.rng.below(200);
        let monthly = 1000 + self.rng.below(250_000);
        let total = monthly * (1 + self.rng.below(36));
        let industry = INDUSTRIES[usize::from(self.industry[c as usize])];
        // Writing into a Vec cannot fail.
        let _ = writeln!(
            self.buf,
            "{{\"type\":\"company\",\"companyID\":\"c-{c:05}\",\"industry\":\"{industry}\",\
             \"revenu\":{},\"employees\":{employees},\"job30\":{job30},\"job90\":{job90},\
             \"monthlyFee\":{}.{:02},\"totalFee\":{}.{:02}}}",
            self.revenu[c as usize],
            monthly / 100,
            monthly % 100,
            total / 100,
            total % 100
        );
    }

    fn event_line(&mut self) {
        if self.rng.next_f64() < UPDATE_FRACTION {
            self.max_ts += (self.rng.next_f64() * self.step2) as i64;
            let c = self.rng.below(u64::from(self.companies)) as u32;
            self.company_line(c);
            return;
        }
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let u = self.rng.next_f64() * total;
        let rank = self
            .cumulative
            .partition_point(|&x| x <= u)
            .min(self.cumulative.len() - 1);
        let c = self.rank_to_company[rank];
        let user = self.rng.below(USERS as u64);
        let x = self.rng.next_f64();
        let nb_jobs = 1 + (x * x * 10.0) as u64;
        let ts = if self.rng.next_f64() < LATE_FRACTION {
            (self.max_ts - 1 - (self.rng.next_f64() * LATE_MAX_MS) as i64).max(START_TS)
        } else {
            self.max_ts += (self.rng.next_f64() * self.step2) as i64;
            self.max_ts
        };
        let mut ibuf = itoa::Buffer::new();
        self.buf
            .extend_from_slice(b"{\"type\":\"job\",\"companyID\":\"c-");
        pad5(&mut self.buf, u64::from(c));
        self.buf.extend_from_slice(b"\",\"userID\":\"u-");
        pad5(&mut self.buf, user);
        self.buf.extend_from_slice(b"\",\"nbJobs\":");
        self.buf.extend_from_slice(ibuf.format(nb_jobs).as_bytes());
        self.buf.extend_from_slice(b",\"creationDate\":");
        self.buf.extend_from_slice(ibuf.format(ts).as_bytes());
        self.buf.extend_from_slice(b"}\n");
    }
}

/// Writes `n` with at least five digits, zero-padded.
fn pad5(out: &mut Vec<u8>, n: u64) {
    let mut ibuf = itoa::Buffer::new();
    let digits = ibuf.format(n).as_bytes();
    out.extend(std::iter::repeat_n(
        b'0',
        5usize.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits);
}

impl Read for Generator {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < out.len() {
            if self.pos == self.buf.len() {
                self.refill();
                if self.buf.is_empty() {
                    break;
                }
            }
            let n = (self.buf.len() - self.pos).min(out.len() - written);
            out[written..written + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            written += n;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generate(config: GeneratorConfig) -> String {
        let mut text = String::new();
        Generator::new(config).read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn same_seed_same_bytes_and_the_promised_shape() {
        let config = GeneratorConfig {
            events: 20_000,
            companies: 50,
            seed: 7,
        };
        let text = generate(config.clone());
        assert_eq!(text, generate(config));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 50 + 20_000);
        assert!(
            lines[..50]
                .iter()
                .all(|l| l.starts_with(r#"{"type":"company""#))
        );
        let updates = lines[50..]
            .iter()
            .filter(|l| l.contains(r#""type":"company""#))
            .count();
        assert!((40..200).contains(&updates), "{updates}");
        assert_ne!(
            text,
            generate(GeneratorConfig {
                events: 20_000,
                companies: 50,
                seed: 8
            })
        );
    }
}
