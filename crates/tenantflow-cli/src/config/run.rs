//! The configuration of `tenantflow run`: one tree, each default a named constant
//! defined here once, each bound in its key's type. The file (`--config`), the
//! `TENANTFLOW_*` variables and the flags all set keys of this tree.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tenantflow_core::decode::DefaultKind;
use tenantflow_remote::auth::AuthKind;
use tenantflow_remote::keyed::Emission;
use tenantflow_runtime::MissingEventTime;
use tenantflow_sinks::encoding::Format;
use tenantflow_sinks::file::{Compression, PartitionTime, Partitioning};
use tenantflow_sources::InputFormat;
use tenantflow_sources::generator;

use super::Config;
use super::value::{Count, HttpUrl, Interval, Listen, NonEmpty, Size, Span};

const SECOND_MS: u64 = 1_000;
const DAY_MS: u64 = 86_400_000;

/// Most keyed workers: each is a thread with its own open files and queues.
pub type Workers = Count<1, 256>;
/// Events of the built-in generator.
pub type GeneratedEvents = Count<0, 10_000_000_000>;
/// Tenants of the built-in generator.
pub type GeneratedCompanies = Count<1, 100_000_000>;
/// Longest accepted record.
pub type RecordSize = Size<64, { 1 << 30 }>;
/// A result file's size limit.
pub type FileSize = Size<{ 1 << 10 }, { 1 << 40 }>;
/// Open partitions per worker.
pub type OpenFiles = Count<1, 4096>;
/// A duration from zero to ten years.
pub type LongSpan = Span<0, { 3650 * DAY_MS }>;
/// A result file's age limit: a second to a week.
pub type FileAge = Span<SECOND_MS, { 7 * DAY_MS }>;
/// Requests in flight to a remote service.
pub type InFlight = Count<1, 4096>;
/// Time allowed to one remote attempt.
pub type AttemptTimeout = Span<10, { 600 * SECOND_MS }>;
/// Attempts of one remote call.
pub type Attempts = Count<1, 100>;
/// Rows per scoring request: about 60 bytes a CSV row, within SageMaker's 6 MB.
pub type ScoreBatch = Count<1, 50_000>;
/// How long a scoring batch waits for more rows.
pub type Linger = Span<0, { 60 * SECOND_MS }>;

pub const DEFAULT_GENERATED_EVENTS: GeneratedEvents =
    GeneratedEvents::new(generator::DEFAULT_EVENTS);
pub const DEFAULT_GENERATED_COMPANIES: GeneratedCompanies =
    GeneratedCompanies::new(generator::DEFAULT_COMPANIES as u64);
pub const DEFAULT_SEED: u64 = generator::DEFAULT_SEED;
pub const DEFAULT_MAX_RECORD_SIZE: RecordSize = RecordSize::new(1 << 20);
pub const DEFAULT_ALLOWED_LATENESS: LongSpan = LongSpan::new(Duration::from_secs(90 * 86_400));
pub const DEFAULT_MAX_EVENT_TIME_SKEW: LongSpan = LongSpan::new(Duration::from_secs(86_400));
pub const DEFAULT_OUTPUT: &str = "./tenantflow-out";
pub const DEFAULT_MAX_OPEN_FILES: OpenFiles =
    OpenFiles::new(tenantflow_sinks::file::DEFAULT_MAX_OPEN_FILES.get() as u64);
pub const DEFAULT_MAX_FILE_AGE: FileAge =
    FileAge::new(tenantflow_sinks::file::DEFAULT_MAX_FILE_AGE);
pub const DEFAULT_MAX_FILE_SIZE: FileSize =
    FileSize::new(tenantflow_sinks::file::DEFAULT_MAX_FILE_BYTES);
pub const DEFAULT_CHECKPOINT_INTERVAL: Interval = Interval::every(Duration::from_secs(60));
pub const DEFAULT_ADMIN_LISTEN: Listen = Listen::at(std::net::SocketAddr::V4(
    std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9464),
));
pub const DEFAULT_AGGREGATES_INTERVAL: Interval = Interval::every(Duration::from_secs(300));
pub const DEFAULT_TENANT_TTL: LongSpan = LongSpan::new(Duration::from_secs(3600));
pub const DEFAULT_UNKNOWN_TENANT_TTL: LongSpan = LongSpan::new(Duration::from_secs(60));
pub const DEFAULT_LOOKUP_MAX_IN_FLIGHT: InFlight = InFlight::new(64);
pub const DEFAULT_SCORE_MAX_IN_FLIGHT: InFlight = InFlight::new(16);
pub const DEFAULT_ATTEMPT_TIMEOUT: AttemptTimeout = AttemptTimeout::new(Duration::from_secs(5));
pub const DEFAULT_ATTEMPTS: Attempts = Attempts::new(10);
pub const DEFAULT_SCORE_BATCH: ScoreBatch = ScoreBatch::new(100);
pub const DEFAULT_SCORE_LINGER: Linger = Linger::new(Duration::from_millis(10));
/// A lease setting: a tenth of a second to an hour.
pub type LeaseSpan = Span<100, { 3600 * SECOND_MS }>;
/// Leases a worker takes per scan.
pub type LeasesPerRound = Count<1, 1000>;
pub const DEFAULT_LEASE_TIMEOUT: LeaseSpan = LeaseSpan::new(Duration::from_secs(10));
pub const DEFAULT_LEASE_RENEW_INTERVAL: LeaseSpan = LeaseSpan::new(Duration::from_secs(3));
pub const DEFAULT_LEASE_TAKE_INTERVAL: LeaseSpan = LeaseSpan::new(Duration::from_secs(5));
pub const DEFAULT_SHARD_SYNC_INTERVAL: LeaseSpan = LeaseSpan::new(Duration::from_secs(10));
pub const DEFAULT_MAX_LEASES_PER_ROUND: LeasesPerRound = LeasesPerRound::new(4);

/// Everything `tenantflow run` can be told, validated by its types.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Keyed workers; `None`: one per core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<Workers>,
    pub sources: Sources,
    pub event_time: EventTime,
    pub lookup: Lookup,
    pub scoring: Scoring,
    pub output: Output,
    pub checkpoints: Checkpoints,
    pub aggregates: Aggregates,
    pub admin: Admin,
    pub cluster: Cluster,
}

/// What is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sources {
    /// Files, folders, `-` and `kinesis://` streams; none: the generator.
    pub inputs: Vec<String>,
    pub input_format: InputFormat,
    pub kind: DefaultKind,
    pub max_record_size: RecordSize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_when_idle: Option<LongSpan>,
    pub generator: Generator,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            inputs: Vec::new(),
            input_format: InputFormat::Auto,
            kind: DefaultKind::Infer,
            max_record_size: DEFAULT_MAX_RECORD_SIZE,
            exit_when_idle: None,
            generator: Generator::default(),
        }
    }
}

/// The built-in generator, used when there are no inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Generator {
    pub events: GeneratedEvents,
    pub companies: GeneratedCompanies,
    pub seed: u64,
}

impl Default for Generator {
    fn default() -> Self {
        Self {
            events: DEFAULT_GENERATED_EVENTS,
            companies: DEFAULT_GENERATED_COMPANIES,
            seed: DEFAULT_SEED,
        }
    }
}

/// Which event times count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventTime {
    pub allowed_lateness: LongSpan,
    pub max_skew: LongSpan,
    pub when_missing: MissingEventTime,
}

impl Default for EventTime {
    fn default() -> Self {
        Self {
            allowed_lateness: DEFAULT_ALLOWED_LATENESS,
            max_skew: DEFAULT_MAX_EVENT_TIME_SKEW,
            when_missing: MissingEventTime::DeadLetter,
        }
    }
}

/// Tenant lookups at the TenantManager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lookup {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_manager: Option<HttpUrl>,
    pub ttl: LongSpan,
    pub unknown_ttl: LongSpan,
    pub max_in_flight: InFlight,
    pub timeout: AttemptTimeout,
    pub attempts: Attempts,
    pub order: Emission,
    pub auth: AuthKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl Default for Lookup {
    fn default() -> Self {
        Self {
            tenant_manager: None,
            ttl: DEFAULT_TENANT_TTL,
            unknown_ttl: DEFAULT_UNKNOWN_TENANT_TTL,
            max_in_flight: DEFAULT_LOOKUP_MAX_IN_FLIGHT,
            timeout: DEFAULT_ATTEMPT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            order: Emission::Unordered,
            auth: AuthKind::None,
            api_key: None,
        }
    }
}

/// Churn scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scoring {
    pub scorer: Scorer,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sagemaker_endpoint_url: Option<HttpUrl>,
    pub batch: ScoreBatch,
    pub linger: Linger,
    pub max_in_flight: InFlight,
    pub timeout: AttemptTimeout,
    pub attempts: Attempts,
    pub order: Emission,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<PathBuf>,
    pub auth: AuthKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl Default for Scoring {
    fn default() -> Self {
        Self {
            scorer: Scorer(tenantflow_remote::score::ScorerTarget::Embedded),
            model: None,
            sagemaker_endpoint_url: None,
            batch: DEFAULT_SCORE_BATCH,
            linger: DEFAULT_SCORE_LINGER,
            max_in_flight: DEFAULT_SCORE_MAX_IN_FLIGHT,
            timeout: DEFAULT_ATTEMPT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            order: Emission::Unordered,
            contract: None,
            auth: AuthKind::None,
            api_key: None,
        }
    }
}

/// Where churn scores come from: `embedded`, `sagemaker://NAME`, or an
/// `http(s)://…/invocations` or `…/assessChurn` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scorer(pub tenantflow_remote::score::ScorerTarget);

impl std::str::FromStr for Scorer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        tenantflow_remote::score::ScorerTarget::parse(text)
            .map(Scorer)
            .map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use tenantflow_remote::score::ScorerTarget;
        match &self.0 {
            ScorerTarget::Embedded => f.write_str("embedded"),
            ScorerTarget::SageMaker(name) => write!(f, "sagemaker://{name}"),
            ScorerTarget::Invocations(url) | ScorerTarget::AssessChurn(url) => f.write_str(url),
        }
    }
}

impl Serialize for Scorer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scorer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Where and how results are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Output {
    pub url: NonEmpty,
    pub format: Format,
    pub compression: Compression,
    pub partitioning: Partitioning,
    pub partition_time: PartitionTime,
    pub max_open_files: OpenFiles,
    pub max_file_age: FileAge,
    pub max_file_size: FileSize,
    pub model_version_field: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

impl Default for Output {
    fn default() -> Self {
        Self {
            url: NonEmpty::fixed(DEFAULT_OUTPUT),
            format: Format::Ndjson,
            compression: Compression::None,
            partitioning: Partitioning::Hourly,
            partition_time: PartitionTime::Event,
            max_open_files: DEFAULT_MAX_OPEN_FILES,
            max_file_age: DEFAULT_MAX_FILE_AGE,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            model_version_field: false,
            stream: None,
        }
    }
}

/// Where checkpoints go, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checkpoints {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<NonEmpty>,
    pub interval: Interval,
}

impl Default for Checkpoints {
    fn default() -> Self {
        Self {
            url: None,
            interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
}

/// The BI aggregates under `OUTPUT/aggregates/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Aggregates {
    pub interval: Interval,
}

impl Default for Aggregates {
    fn default() -> Self {
        Self {
            interval: DEFAULT_AGGREGATES_INTERVAL,
        }
    }
}

/// The admin server: metrics, health, the tenant state API, the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    pub listen: Listen,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            listen: DEFAULT_ADMIN_LISTEN,
        }
    }
}

/// Scale-out: workers share the first Kinesis input's shards through leases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cluster {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_table: Option<NonEmpty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<NonEmpty>,
    pub lease_timeout: LeaseSpan,
    pub lease_renew_interval: LeaseSpan,
    pub lease_take_interval: LeaseSpan,
    pub shard_sync_interval: LeaseSpan,
    pub max_leases_per_round: LeasesPerRound,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            lease_table: None,
            worker_id: None,
            lease_timeout: DEFAULT_LEASE_TIMEOUT,
            lease_renew_interval: DEFAULT_LEASE_RENEW_INTERVAL,
            lease_take_interval: DEFAULT_LEASE_TAKE_INTERVAL,
            shard_sync_interval: DEFAULT_SHARD_SYNC_INTERVAL,
            max_leases_per_round: DEFAULT_MAX_LEASES_PER_ROUND,
        }
    }
}

impl Config for RunConfig {
    const KEYS: &'static [(&'static str, &'static str, Option<&'static str>)] = &[
        (
            "workers",
            "Keyed workers; without it, one per core.",
            Some("4"),
        ),
        (
            "sources.inputs",
            "NDJSON or CSV files, folders of them (read in name order), `.gz` files, `-` for stdin, or Kinesis streams `kinesis://STREAM[?start=trim_horizon|latest|at_timestamp:TIME&kind=job|company|auto&format=ndjson|csv|auto]`. Files are read in the order given, streams concurrently with them. None: the generator below.",
            None,
        ),
        (
            "sources.input_format",
            "Line format of inputs: `auto` (dead letters in a `_rejected` folder, CSV for `.csv`/`.csv.gz` names, else NDJSON), `ndjson`, `csv` or `dead-letters` (a re-drive).",
            None,
        ),
        (
            "sources.kind",
            "Kind of NDJSON records without a `type` tag: `auto` (with `industry` a company, else a job event), `job` or `company`.",
            None,
        ),
        (
            "sources.max_record_size",
            "Longest accepted record; longer ones become dead letters `record_too_large`.",
            None,
        ),
        (
            "sources.exit_when_idle",
            "Stop reading Kinesis streams once every shard has been idle this long; without it, streams are read until Ctrl-C or SIGTERM.",
            Some("\"5s\""),
        ),
        (
            "sources.generator.events",
            "Events the built-in generator makes when there are no inputs.",
            None,
        ),
        (
            "sources.generator.companies",
            "Tenants of the generator.",
            None,
        ),
        ("sources.generator.seed", "Seed of the generator.", None),
        (
            "event_time.allowed_lateness",
            "How far behind its tenant's newest event an event may be and still count (rounded up to whole days); later ones become dead letters `too_late`.",
            None,
        ),
        (
            "event_time.max_skew",
            "How far ahead of the wall clock an event time may be; later ones, and any before 2000-01-01, become dead letters `event_time_out_of_range`.",
            None,
        ),
        (
            "event_time.when_missing",
            "A job event read from a file without `creationDate`: `reject` (a dead letter `missing_event_time`) or `arrival` (it takes the time it was read). Stream records always take their arrival time.",
            None,
        ),
        (
            "lookup.tenant_manager",
            "The TenantManager's base URL: a job event whose tenant has no profile yet waits for `GET /api/v1/tenants/{id}`. Without it, such events are dead letters `unknown_company` at once.",
            Some("\"http://127.0.0.1:8080\""),
        ),
        (
            "lookup.auth",
            "How lookups are authenticated: `none`, `api-key` (`lookup.api_key` in `x-api-key`) or `sigv4` (AWS Signature V4 for `execute-api`, credentials from the AWS chain).",
            None,
        ),
        (
            "lookup.api_key",
            "The key `lookup.auth` api-key sends; never logged.",
            Some("\"…\""),
        ),
        (
            "lookup.ttl",
            "How long a fetched profile is used before it is fetched again.",
            None,
        ),
        (
            "lookup.unknown_ttl",
            "How long a tenant the TenantManager answered 404 for is taken as unknown without asking again.",
            None,
        ),
        (
            "lookup.max_in_flight",
            "Most lookups in flight at once, over the whole job.",
            None,
        ),
        (
            "lookup.timeout",
            "Time allowed to one lookup attempt.",
            None,
        ),
        (
            "lookup.attempts",
            "Attempts of one lookup before its events become dead letters `lookup_failed`.",
            None,
        ),
        (
            "lookup.order",
            "`unordered`: only a tenant's own records wait for its lookup; `ordered`: every record after a waiting one waits too.",
            None,
        ),
        (
            "scoring.scorer",
            "Where churn scores come from: `embedded`, `sagemaker://ENDPOINT_NAME`, `http(s)://…/invocations` or `http(s)://…/assessChurn`.",
            None,
        ),
        (
            "scoring.contract",
            "A scoring contract file (TOML): the columns a remote scorer takes, the industry as text or one-hot, and how its answer is read. Without it: the target's own (`/assessChurn`: one company as JSON, `{\"churn\"}` back; the others: tenantflow's CSV rows, `predictions` back). `contracts/linear-learner.toml` is the original deployment's endpoint.",
            Some("\"contracts/linear-learner.toml\""),
        ),
        (
            "scoring.auth",
            "How requests to an HTTP scorer are authenticated: `none`, `api-key` (`scoring.api_key` in `x-api-key`, as an API Gateway usage plan wants) or `sigv4` (AWS Signature V4 for `execute-api`, credentials from the AWS chain). A `sagemaker://` scorer always signs with the AWS chain.",
            None,
        ),
        (
            "scoring.api_key",
            "The key `scoring.auth` api-key sends; never logged.",
            Some("\"…\""),
        ),
        (
            "scoring.model",
            "Model file of the embedded scorer; without it, the built-in model.",
            Some("\"model.json\""),
        ),
        (
            "scoring.sagemaker_endpoint_url",
            "The SageMaker runtime's URL for a `sagemaker://` scorer; without it, the AWS chain's.",
            Some("\"http://127.0.0.1:8081\""),
        ),
        (
            "scoring.batch",
            "Most rows per request to a remote scorer (`/assessChurn` takes one).",
            None,
        ),
        (
            "scoring.linger",
            "How long a request to a remote scorer waits for more rows before it goes unfilled.",
            None,
        ),
        (
            "scoring.max_in_flight",
            "Most requests to a remote scorer in flight at once, over the whole job.",
            None,
        ),
        (
            "scoring.timeout",
            "Time allowed to one attempt of a scoring request.",
            None,
        ),
        (
            "scoring.attempts",
            "Attempts of one scoring request before its rows become dead letters `scoring_failed`.",
            None,
        ),
        (
            "scoring.order",
            "`unordered`: a scored batch comes out as soon as no older waiting batch holds one of its tenants; `ordered`: batches come out in the order they were sent.",
            None,
        ),
        (
            "output.url",
            "Where results go: a folder, `file:///path`, `s3://bucket/prefix` or `memory://`.",
            None,
        ),
        (
            "output.format",
            "Result format: `ndjson`, `csv` or `parquet`.",
            None,
        ),
        (
            "output.compression",
            "Compression of NDJSON and CSV files: `none` or `gzip`.",
            None,
        ),
        (
            "output.partitioning",
            "Folder layout of result files: `hourly` (`yyyy-MM-dd--HH/`) or `hive` (`dt=YYYY-MM-DD/hour=HH/`).",
            None,
        ),
        (
            "output.partition_time",
            "Which time picks a result's hour folder: `event` (its `creationDate`) or `processing` (when it is written, the original Flink job's folders).",
            None,
        ),
        (
            "output.max_open_files",
            "Partitions a worker keeps a file open in at once.",
            None,
        ),
        (
            "output.max_file_age",
            "A result file is finished at the first checkpoint after it is this old.",
            None,
        ),
        (
            "output.max_file_size",
            "A result file is completed once it reaches this size.",
            None,
        ),
        (
            "output.model_version_field",
            "Results carry the version of the model that scored them (`modelVersion`).",
            None,
        ),
        (
            "output.stream",
            "Also write every result, as JSON with partition key companyID, to this Kinesis stream.",
            Some("\"enrichedcompanies\""),
        ),
        (
            "checkpoints.url",
            "Where checkpoints go; without it, `_checkpoints/` under the output.",
            Some("\"s3://bucket/checkpoints\""),
        ),
        (
            "checkpoints.interval",
            "How often a checkpoint is taken; `off` for only at the end of the run.",
            None,
        ),
        (
            "aggregates.interval",
            "How often the BI aggregates (OUTPUT/aggregates/customers.csv and jobs.csv) are rewritten, at the first checkpoint after each interval and at the end; `off` for never.",
            None,
        ),
        (
            "admin.listen",
            "Where the admin server listens (/metrics, /healthz, /readyz, /tenants, the dashboard at /): 0.0.0.0:9464 in a container; `off` for no server.",
            None,
        ),
        (
            "cluster.lease_table",
            "A DynamoDB table (created if missing, on-demand billing) of leases on the first Kinesis input's shards, in the Kinesis Client Library's format: the workers that name it share the shards, each running the job of the shards it holds. Without it, one process reads every shard.",
            Some("\"tenantflow-leases\""),
        ),
        (
            "cluster.worker_id",
            "This worker's name in the lease table (`leaseOwner`), unique among the live workers; without it, the host name, the process id and a random suffix.",
            Some("\"worker-1\""),
        ),
        (
            "cluster.lease_timeout",
            "A lease not renewed for this long may be taken by another worker: how long a dead worker's shards wait.",
            None,
        ),
        (
            "cluster.lease_renew_interval",
            "How often a worker renews its leases; at most a third of `cluster.lease_timeout`.",
            None,
        ),
        (
            "cluster.lease_take_interval",
            "How often a worker scans the lease table to take free or expired leases, or to steal one from a worker above its share.",
            None,
        ),
        (
            "cluster.shard_sync_interval",
            "How often the stream's shards are listed and given leases (children after a reshard).",
            None,
        ),
        (
            "cluster.max_leases_per_round",
            "Most free or expired leases a worker takes per scan.",
            None,
        ),
    ];

    const SECRETS: &'static [&'static str] = &["lookup.api_key", "scoring.api_key"];
}
