//! Property test of the checkpoint protocol: runs of the whole job against an
//! in-memory store that fails one operation at a seeded moment (the run dies there, as
//! in a crash: nothing of the process survives but the store), each followed by the
//! same job started again, end with exactly the results of a run that never failed.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tenantflow_core::decode::DefaultKind;
use tenantflow_core::time::EventTimeBounds;
use tenantflow_operators::score::Model;
use tenantflow_operators::window::Retention;
use tenantflow_runtime::{CheckpointStore, JobConfig, Metrics, MissingEventTime, run};
use tenantflow_sinks::StoreError;
use tenantflow_sinks::file::{Compression, FileSinkConfig};
use tenantflow_sinks::store::{Listed, MemoryStore, Store};
use tenantflow_sinks::upload::{Location, Staging};
use tenantflow_sources::generator::GeneratorConfig;
use tenantflow_sources::{Input, InputFormat, InputSpec};

/// A memory store whose operation number `fail_at` (counting from 1) fails. Without
/// `lists_uploads` it behaves as S3 does for tenantflow: uploads in progress cannot be
/// listed, so they get markers, and small files are staged.
#[derive(Debug)]
struct Faulty {
    inner: Arc<MemoryStore>,
    ops: AtomicU64,
    fail_at: u64,
    lists_uploads: bool,
    /// The writes and syncs so far, in order: `(operation, path)`.
    trail: std::sync::Mutex<Vec<(&'static str, String)>>,
}

impl Faulty {
    fn new(inner: Arc<MemoryStore>, fail_at: u64, lists_uploads: bool) -> Self {
        Self {
            inner,
            ops: AtomicU64::new(0),
            fail_at,
            lists_uploads,
            trail: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn record(&self, what: &'static str, path: &str) {
        self.trail.lock().unwrap().push((what, path.to_owned()));
    }

    fn op(&self, what: &'static str) -> Result<(), StoreError> {
        let n = self.ops.fetch_add(1, Ordering::Relaxed) + 1;
        if n == self.fail_at {
            return Err(StoreError::State {
                op: what,
                location: format!("operation {n}"),
                message: "injected failure".into(),
            });
        }
        Ok(())
    }
}

impl Store for Faulty {
    fn url(&self) -> String {
        self.inner.url()
    }
    fn part_size(&self) -> usize {
        self.inner.part_size()
    }
    fn put(&self, path: &str, data: Bytes) -> Result<(), StoreError> {
        self.op("put")?;
        self.inner.put(path, data)
    }
    fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool, StoreError> {
        self.op("put_if_absent")?;
        if path.contains("manifest-") {
            self.record("manifest", &String::from_utf8_lossy(&data));
        }
        self.inner.put_if_absent(path, data)
    }
    fn get(&self, path: &str) -> Result<Option<Bytes>, StoreError> {
        self.op("get")?;
        self.inner.get(path)
    }
    fn delete(&self, path: &str) -> Result<(), StoreError> {
        self.op("delete")?;
        self.inner.delete(path)
    }
    fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        self.op("list")?;
        self.inner.list(prefix)
    }
    fn begin_upload(&self, path: &str) -> Result<String, StoreError> {
        self.op("begin_upload")?;
        self.inner.begin_upload(path)
    }
    fn put_part(
        &self,
        path: &str,
        upload: &str,
        index: usize,
        offset: u64,
        data: Bytes,
    ) -> Result<String, StoreError> {
        self.op("put_part")?;
        let part = self.inner.put_part(path, upload, index, offset, data)?;
        self.record("put_part", &format!("{path}#{part}"));
        Ok(part)
    }
    fn seal_upload(&self, path: &str, upload: &str) -> Result<(), StoreError> {
        self.op("seal_upload")?;
        self.inner.seal_upload(path, upload)
    }
    fn sync_written(&self) -> Result<(), StoreError> {
        self.op("sync_written")?;
        self.record("sync_written", "");
        self.inner.sync_written()
    }
    fn size(&self, path: &str) -> Result<Option<u64>, StoreError> {
        self.op("size")?;
        self.inner.size(path)
    }
    fn copy(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        self.op("copy")?;
        self.inner.copy(from, to)
    }
    fn tracks_uploads(&self) -> bool {
        self.lists_uploads
    }
    fn list_uploads(&self, prefix: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        self.op("list_uploads")?;
        if self.lists_uploads {
            self.inner.list_uploads(prefix)
        } else {
            Ok(None)
        }
    }
    fn complete_upload(
        &self,
        path: &str,
        upload: &str,
        parts: &[String],
        len: u64,
    ) -> Result<(), StoreError> {
        self.op("complete_upload")?;
        self.inner.complete_upload(path, upload, parts, len)
    }
    fn abort_upload(&self, path: &str, upload: &str) -> Result<(), StoreError> {
        self.op("abort_upload")?;
        self.inner.abort_upload(path, upload)
    }
}

fn config(store: Arc<dyn Store>, compression: Compression) -> JobConfig {
    config_of(store, compression, 40_000)
}

fn config_of(store: Arc<dyn Store>, compression: Compression, events: u64) -> JobConfig {
    let inputs = Input::resolve(
        &[InputSpec::Generator(GeneratorConfig {
            events,
            companies: 300,
            seed: 11,
        })],
        InputFormat::Auto,
    )
    .unwrap();
    let root = Location::root(store);
    let checkpoints = CheckpointStore {
        location: root.child("_checkpoints"),
    };
    let mut output = FileSinkConfig::new(
        root,
        Staging {
            location: checkpoints.location.clone(),
        },
    );
    output.compression = compression;
    output.max_file_bytes = 48 << 10;
    output.max_open_files = std::num::NonZeroUsize::new(3).unwrap();
    JobConfig {
        inputs,
        streams: Vec::new(),
        exit_when_idle: None,
        output_stream: None,
        default_kind: DefaultKind::Infer,
        output,
        checkpoints,
        // Rewritten at every checkpoint: each is staged and committed with it.
        aggregates_interval: Some(std::time::Duration::ZERO),
        checkpoint_interval: Some(Duration::from_millis(20)),
        model: Model::builtin(),
        workers: std::num::NonZeroUsize::new(2).unwrap(),
        retention: Retention::default(),
        max_record_bytes: 1 << 20,
        event_time: EventTimeBounds::default(),
        file_missing_event_time: MissingEventTime::DeadLetter,
        lookup: None,
        scoring: None,
        locks: Vec::new(),
        shard: None,
        fence: None,
        resume_from: tenantflow_runtime::ResumeFrom::Latest,
        stop: None,
    }
}

/// What a run committed: every result line (not under `_checkpoints/`), sorted; the
/// uploads still in progress; and the BI aggregates, by path.
struct Committed {
    lines: Vec<String>,
    in_progress: usize,
    aggregates: std::collections::BTreeMap<String, bytes::Bytes>,
}

fn committed(store: &MemoryStore, compression: Compression) -> Committed {
    let mut lines = Vec::new();
    let mut aggregates = std::collections::BTreeMap::new();
    for object in store.list("").unwrap() {
        if object.path.starts_with("_checkpoints") {
            continue;
        }
        if object.path.starts_with("aggregates/") {
            aggregates.insert(
                object.path.clone(),
                store.get(&object.path).unwrap().unwrap(),
            );
            continue;
        }
        let data = store.get(&object.path).unwrap().unwrap();
        let text = match (compression, object.path.starts_with("_rejected")) {
            (Compression::Gzip, false) => {
                let mut text = String::new();
                std::io::Read::read_to_string(
                    &mut flate2::read::MultiGzDecoder::new(&data[..]),
                    &mut text,
                )
                .unwrap();
                text
            }
            _ => String::from_utf8(data.to_vec()).unwrap(),
        };
        lines.extend(text.lines().map(str::to_owned));
    }
    lines.sort();
    Committed {
        lines,
        in_progress: store.list_uploads("").unwrap().unwrap().len(),
        aggregates,
    }
}

/// Small parts, so that files have several, and files of both kinds (uploads with parts,
/// small files staged whole) are written.
const PART: usize = 2048;

#[test]
fn runs_failing_at_random_store_operations_then_resumed_give_exactly_the_results() {
    for (compression, lists_uploads) in [
        (Compression::None, true),
        (Compression::Gzip, true),
        (Compression::None, false),
    ] {
        let what = format!("{compression:?}, uploads listed: {lists_uploads}");
        let clean = Arc::new(MemoryStore::new());
        let summary = run(
            config(clean.clone(), compression),
            &std::sync::Arc::new(Metrics::default()),
        )
        .unwrap();
        let want = committed(&clean, compression);
        assert_eq!(want.in_progress, 0);
        assert_eq!(want.lines.len() as u64, summary.metrics.results);
        assert_eq!(
            want.aggregates.keys().collect::<Vec<_>>(),
            ["aggregates/customers.csv", "aggregates/jobs.csv"]
        );
        // How many store operations one clean run makes: failures land anywhere in it.
        let counter = Arc::new(Faulty::new(
            Arc::new(MemoryStore::with_part_size(PART)),
            0,
            lists_uploads,
        ));
        run(
            config(counter.clone(), compression),
            &std::sync::Arc::new(Metrics::default()),
        )
        .unwrap();
        let total_ops = counter.ops.load(Ordering::Relaxed);

        // Each run fails at a random operation within the first half of a clean run's.
        // A run that gets through leaves a finished checkpoint; later runs then fail
        // during recovery, or not at all.
        let mut rng = tenantflow_core::rng::SplitMix64::new(2026);
        let store = Arc::new(MemoryStore::with_part_size(PART));
        let mut failures = 0;
        let faulty = |fail_at| Arc::new(Faulty::new(Arc::clone(&store), fail_at, lists_uploads));
        for _ in 0..8 {
            let fail_at = 1 + rng.next_u64() % (total_ops / 2);
            if run(
                config(faulty(fail_at), compression),
                &std::sync::Arc::new(Metrics::default()),
            )
            .is_err()
            {
                failures += 1;
            }
        }
        assert!(failures >= 3, "only {failures} runs met their failure");
        // The last run fails nowhere, but sees the store as the others did.
        let last = run(
            config(faulty(u64::MAX), compression),
            &std::sync::Arc::new(Metrics::default()),
        )
        .unwrap();
        eprintln!("{what}: {failures} failed runs of {total_ops} operations each at most");
        assert!(last.resumed_from.is_some());
        let got = committed(&store, compression);
        assert_eq!(got.in_progress, 0, "{what}: uploads left in progress");
        let leftovers: Vec<String> = store
            .list("_checkpoints")
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .filter(|p| p.contains("/uploads/") || p.contains("/staged/"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: left behind: {leftovers:?}");
        assert_eq!(
            got.lines.len(),
            want.lines.len(),
            "{what}: results lost or doubled"
        );
        assert!(got.lines == want.lines, "{what}: results differ");
        // The aggregates of the final checkpoint: the same state, the same files.
        assert!(
            got.aggregates == want.aggregates,
            "{what}: aggregates differ"
        );
    }
}

/// A commit point that refuses every checkpoint, as a lease taken by another worker does.
#[derive(Debug)]
struct Refused;

impl tenantflow_runtime::checkpoint::fence::CommitFence for Refused {
    fn commit(
        &self,
        _: &tenantflow_runtime::checkpoint::fence::FencedCheckpoint<'_>,
    ) -> Result<(), String> {
        Err("the lease went to another worker".into())
    }
}

/// A job whose checkpoints cannot commit stops at the first refusal, with its error,
/// rather than read on and commit nothing.
#[test]
fn a_job_whose_checkpoint_is_refused_stops_with_that_error() {
    const EVENTS: u64 = 50_000_000;
    let store = Arc::new(MemoryStore::new());
    let mut config = config_of(store.clone(), Compression::None, EVENTS);
    config.fence = Some(Arc::new(Refused));
    let metrics = Arc::new(Metrics::default());
    let error = run(config, &metrics).unwrap_err();
    assert!(
        matches!(error, tenantflow_runtime::RunError::LeaseLost(_)),
        "{error}"
    );
    let read = metrics.snapshot().job_events;
    assert!(
        read < EVENTS / 10,
        "read {read} of {EVENTS} events after the refusal"
    );
    let committed: Vec<String> = store
        .list("")
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .filter(|p| !p.starts_with("_checkpoints"))
        .collect();
    assert!(committed.is_empty(), "{committed:?}");
}

/// The parts a manifest names, as `path#part`: each `parts` list in it, of the nearest
/// enclosing object with a `path` (an open file's state, a pending file).
fn named_parts<'a>(value: &'a serde_json::Value, path: Option<&'a str>, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            let path = map.get("path").and_then(|p| p.as_str()).or(path);
            if let (Some(path), Some(parts)) = (path, map.get("parts").and_then(|p| p.as_array())) {
                out.extend(
                    parts
                        .iter()
                        .filter_map(|p| p.as_str())
                        .map(|part| format!("{path}#{part}")),
                );
            }
            map.values().for_each(|v| named_parts(v, path, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| named_parts(v, path, out)),
        _ => {}
    }
}

/// A checkpoint's parts are synced (one `sync_written` of the store) before its manifest
/// is written: no manifest names a part the store has not made durable.
#[test]
fn every_part_a_manifest_names_was_synced_before_it() {
    let store = Arc::new(Faulty::new(
        Arc::new(MemoryStore::with_part_size(PART)),
        u64::MAX,
        true,
    ));
    run(
        config(store.clone(), Compression::None),
        &std::sync::Arc::new(Metrics::default()),
    )
    .unwrap();
    let trail = store.trail.lock().unwrap();
    let mut unsynced = std::collections::HashSet::new();
    let (mut manifests, mut checked) = (0, 0);
    for (what, detail) in trail.iter() {
        match *what {
            "put_part" => {
                unsynced.insert(detail.as_str());
            }
            "sync_written" => unsynced.clear(),
            "manifest" => {
                let manifest: serde_json::Value = serde_json::from_str(detail).unwrap();
                let mut named = Vec::new();
                named_parts(&manifest, None, &mut named);
                for part in &named {
                    assert!(
                        !unsynced.contains(part.as_str()),
                        "manifest {} names {part}, not synced",
                        manifest["checkpoint"]
                    );
                }
                manifests += 1;
                checked += named.len();
            }
            _ => {}
        }
    }
    assert!(
        manifests > 2 && checked > 10,
        "{manifests} manifests, {checked} parts"
    );
}
