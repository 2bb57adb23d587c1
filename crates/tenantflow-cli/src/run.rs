//! `tenantflow run`: the configuration's layers → validated job config → runtime →
//! summary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;

use tenantflow_core::DeadLetterReason;
use tenantflow_core::time::EventTimeBounds;
use tenantflow_kinesis::url::KinesisInput;
use tenantflow_operators::score::Model;
use tenantflow_operators::window::Retention;
use tenantflow_remote::auth::{AuthConfig, AuthKind};
use tenantflow_remote::call::{BACKOFF_BASE, BACKOFF_MAX, CallConfig};
use tenantflow_remote::contract::ScoreContract;
use tenantflow_runtime::{
    CheckpointStore, JobConfig, LockConfig, LookupConfig, Metrics, OutputLock, OutputStart,
    RunSummary, ScorerTarget, ScoringConfig, prepare_output,
};
use tenantflow_sinks::file::FileSinkConfig;
use tenantflow_sinks::store;
use tenantflow_sinks::upload::{Location, Staging};
use tenantflow_sources::generator::GeneratorConfig;
use tenantflow_sources::{Input, InputSpec};

use tenantflow_cluster::LeaseSettings;
use tenantflow_cluster::dynamo::DynamoLeaseStore;
use tenantflow_runtime::cluster::ClusterConfig;

use crate::config::run::{
    AttemptTimeout, Attempts, FileAge, FileSize, GeneratedCompanies, GeneratedEvents, InFlight,
    Linger, LongSpan, OpenFiles, RecordSize, RunConfig, ScoreBatch, Scorer, Workers,
};
use crate::config::value::{HttpUrl, Interval, Listen, NonEmpty, word};
use crate::config::{self, ConfigError};
use crate::flags::UsageError;
use crate::progress::{Progress, thousands};

/// Flags of `tenantflow run`. Each can also be set by its `TENANTFLOW_*` variable, and
/// each but the last five by a key of the `--config` file; a flag's default is its
/// key's.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A configuration file (TOML; `tenantflow config example` prints one with every
    /// key). Variables and flags override its keys.
    #[arg(long, value_name = "FILE", env = "TENANTFLOW_CONFIG")]
    config: Option<PathBuf>,

    /// The original job's Managed Flink application properties (the JSON of
    /// `PropertyGroups`, as the AWS CLI and console use): its streams, scoring route,
    /// API key, S3 path and output stream become this run's settings, over --config's;
    /// variables and flags override them. A key it does not know is reported.
    #[arg(long, value_name = "FILE", env = "TENANTFLOW_PROPERTIES")]
    properties: Option<PathBuf>,

    /// Input: an NDJSON or CSV file, a folder of them (read in name order), `.gz` files,
    /// `-` for stdin, or a Kinesis stream
    /// `kinesis://STREAM[?start=trim_horizon|latest|at_timestamp:TIME&kind=job|company|auto&format=ndjson|csv|auto]`
    /// (`format=csv`: the original producers' CSV lines; `auto`: JSON if a line starts
    /// with `{`, else CSV).
    /// Repeatable; files are read in the order given, streams concurrently with them. In a
    /// folder, names starting with `.` or `_` are skipped.
    #[arg(
        long,
        value_name = "PATH",
        env = "TENANTFLOW_INPUT",
        value_delimiter = ','
    )]
    input: Vec<String>,

    /// Generate N events of a W1-like workload instead of reading input. With no input
    /// at all, `sources.generator.events` events are generated.
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "input",
        env = "TENANTFLOW_GENERATE"
    )]
    generate: Option<GeneratedEvents>,

    /// Seed of the generator.
    #[arg(long, value_name = "S", env = "TENANTFLOW_SEED")]
    seed: Option<u64>,

    /// Tenants of the generator.
    #[arg(long, value_name = "C", env = "TENANTFLOW_COMPANIES")]
    companies: Option<GeneratedCompanies>,

    /// Where results go (partitioned by event hour; dead letters under `_rejected/`): a
    /// folder, `file:///path`, `s3://bucket/prefix` (settings from the AWS environment,
    /// `AWS_ENDPOINT_URL_S3` for a local server) or `memory://`.
    #[arg(long, value_name = "URL", env = "TENANTFLOW_OUTPUT")]
    output: Option<NonEmpty>,

    /// Where checkpoints go (a URL as for --output); default `_checkpoints/` under the
    /// output.
    #[arg(long, value_name = "URL", env = "TENANTFLOW_CHECKPOINTS")]
    checkpoints: Option<NonEmpty>,

    /// How often a checkpoint is taken (files committed, state saved); `off` for only
    /// at the end of the run.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_CHECKPOINT_INTERVAL")]
    checkpoint_interval: Option<Interval>,

    /// How often the BI aggregates (OUTPUT/aggregates/customers.csv and jobs.csv) are
    /// rewritten: at the first checkpoint after each interval, and at the end; `off`
    /// for never.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_AGGREGATES_INTERVAL")]
    aggregates_interval: Option<Interval>,

    /// Where the admin server listens (/metrics, /healthz, /readyz, /tenants, the
    /// dashboard at /): an address such as 127.0.0.1:9464 (the default) or
    /// 0.0.0.0:9464 in a container; port 0 picks a free one; `off` for none.
    #[arg(long, value_name = "ADDR", env = "TENANTFLOW_ADMIN")]
    admin: Option<Listen>,

    /// A DynamoDB table of leases (created if missing): the workers that name it share
    /// the first Kinesis input's shards, each running the job of the shards it holds
    /// (the Kinesis Client Library's model). Its records must be keyed by companyID.
    #[arg(long, value_name = "TABLE", env = "TENANTFLOW_LEASE_TABLE")]
    lease_table: Option<NonEmpty>,

    /// This worker's name in the lease table; default: host name, process id and a
    /// random suffix.
    #[arg(long, value_name = "NAME", env = "TENANTFLOW_WORKER_ID")]
    worker_id: Option<NonEmpty>,

    /// Compression of NDJSON and CSV files: `none` or `gzip`.
    #[arg(long, value_name = "WHAT", value_parser = word::<tenantflow_sinks::file::Compression>, env = "TENANTFLOW_COMPRESSION")]
    compression: Option<tenantflow_sinks::file::Compression>,

    /// Partitions a worker keeps a file open in at once; past it the least recently
    /// written file is finished (each open file buffers up to one part: 1 MiB on disk,
    /// 8 MiB on S3).
    #[arg(long, value_name = "N", env = "TENANTFLOW_MAX_OPEN_FILES")]
    max_open_files: Option<OpenFiles>,

    /// A result file is finished at the first checkpoint after it is this old.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_MAX_FILE_AGE")]
    max_file_age: Option<FileAge>,

    /// Result format: `ndjson`, `csv` or `parquet`.
    #[arg(long, value_name = "FORMAT", value_parser = word::<tenantflow_sinks::encoding::Format>, env = "TENANTFLOW_FORMAT")]
    format: Option<tenantflow_sinks::encoding::Format>,

    /// Which time picks a result's hour folder: `event` (its `creationDate`: a replay
    /// writes the same folders) or `processing` (the hour it is written in, as the
    /// original Flink job's folders were).
    #[arg(long, value_name = "TIME", value_parser = word::<tenantflow_sinks::file::PartitionTime>, env = "TENANTFLOW_PARTITION_TIME")]
    partition_time: Option<tenantflow_sinks::file::PartitionTime>,

    /// Folder layout of result files: `hourly` (`yyyy-MM-dd--HH/`, the original layout)
    /// or `hive` (`dt=YYYY-MM-DD/hour=HH/`).
    #[arg(long, value_name = "LAYOUT", value_parser = word::<tenantflow_sinks::file::Partitioning>, env = "TENANTFLOW_PARTITIONING")]
    partitioning: Option<tenantflow_sinks::file::Partitioning>,

    /// Churn model file of the embedded scorer: a logistic regression (the format of
    /// `../shared/bench/model.json`) or trees, as `tenantflow train` writes them; a built-in model is
    /// used without it.
    #[arg(long, value_name = "PATH", env = "TENANTFLOW_MODEL")]
    model: Option<PathBuf>,

    /// Results carry the version of the model that scored them: a last field
    /// `modelVersion` (NDJSON, Parquet) or column (CSV). The version is the model file's
    /// `version` (`tenantflow train` writes its name and a hash of the file), or what a
    /// remote scorer answers as `model_version`, else the scorer's address.
    #[arg(long, env = "TENANTFLOW_MODEL_VERSION_FIELD")]
    model_version_field: bool,

    /// Line format of inputs: `auto` (dead letters for files in a `_rejected` folder,
    /// CSV for `.csv` and `.csv.gz` names, else NDJSON), `ndjson`, `csv` or
    /// `dead-letters` (each line's record is read again: a re-drive).
    #[arg(long, value_name = "FORMAT", value_parser = word::<tenantflow_sources::InputFormat>, env = "TENANTFLOW_INPUT_FORMAT")]
    input_format: Option<tenantflow_sources::InputFormat>,

    /// Kind of NDJSON records without a `type` tag: `auto` (with `industry` a company,
    /// else a job event), `job` or `company`.
    #[arg(long, value_name = "KIND", value_parser = word::<tenantflow_core::decode::DefaultKind>, env = "TENANTFLOW_KIND")]
    kind: Option<tenantflow_core::decode::DefaultKind>,

    /// Keyed workers; default: one per core.
    #[arg(long, value_name = "N", env = "TENANTFLOW_WORKERS")]
    workers: Option<Workers>,

    /// How far behind its tenant's newest event an event may be and still count (e.g.
    /// `90d`; rounded up to whole days); later ones become dead letters `too_late`.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_ALLOWED_LATENESS")]
    allowed_lateness: Option<LongSpan>,

    /// How far ahead of the wall clock an event time may be (e.g. `1d`, `2h`); later
    /// ones, and any before 2000-01-01, become dead letters `event_time_out_of_range`.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_MAX_EVENT_TIME_SKEW")]
    max_event_time_skew: Option<LongSpan>,

    /// What a job event read from a file without `creationDate` becomes: `reject` (a
    /// dead letter `missing_event_time`) or `arrival` (it takes the time it was read).
    /// Stream records always take their arrival time.
    #[arg(long, value_name = "WHAT", value_parser = word::<tenantflow_runtime::MissingEventTime>, env = "TENANTFLOW_MISSING_EVENT_TIME")]
    missing_event_time: Option<tenantflow_runtime::MissingEventTime>,

    /// Longest accepted record (bytes, or with KiB/MiB); longer ones become dead
    /// letters `record_too_large`.
    #[arg(long, value_name = "SIZE", env = "TENANTFLOW_MAX_RECORD_SIZE")]
    max_record_size: Option<RecordSize>,

    /// A result file is completed once it reaches this size (bytes, or KiB/MiB/GiB).
    #[arg(long, value_name = "SIZE", env = "TENANTFLOW_MAX_FILE_SIZE")]
    max_file_size: Option<FileSize>,

    /// Also write every result, as JSON with partition key companyID, to this Kinesis
    /// stream (e.g. `enrichedcompanies`).
    #[arg(long, value_name = "STREAM", env = "TENANTFLOW_OUTPUT_STREAM")]
    output_stream: Option<String>,

    /// Stop reading Kinesis streams once every shard has been idle this long (e.g. `5s`);
    /// without it, streams are read until Ctrl-C or SIGTERM.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_EXIT_WHEN_IDLE")]
    exit_when_idle: Option<LongSpan>,

    /// The TenantManager's base URL (e.g. `http://127.0.0.1:8080`): a job event whose
    /// tenant has no profile yet waits for `GET /api/v1/tenants/{id}` (one request per
    /// tenant; the tenant's later records wait behind it, in order). Without it, such
    /// events are dead letters `unknown_company` at once.
    #[arg(long, value_name = "URL", env = "TENANTFLOW_TENANT_MANAGER")]
    tenant_manager: Option<HttpUrl>,

    /// How long a profile fetched from the TenantManager is used before it is fetched
    /// again (unless a companies input updates it first).
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_TENANT_TTL")]
    tenant_ttl: Option<LongSpan>,

    /// How long a tenant the TenantManager answered 404 (or 204) for is taken as unknown without
    /// asking again (its events are dead letters `unknown_company` meanwhile; a companies
    /// input record for it ends this at once). `0s`: ask for every event.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_UNKNOWN_TENANT_TTL")]
    unknown_tenant_ttl: Option<LongSpan>,

    /// How lookups are authenticated: `none`, `api-key` (--lookup-api-key in
    /// `x-api-key`) or `sigv4` (AWS Signature V4 for `execute-api`, credentials from the
    /// AWS chain: a TenantManager behind an API Gateway route with IAM authorization).
    #[arg(long, value_name = "AUTH", value_parser = word::<AuthKind>, env = "TENANTFLOW_LOOKUP_AUTH")]
    lookup_auth: Option<AuthKind>,

    /// The key of --lookup-auth api-key; never logged.
    #[arg(
        long,
        value_name = "KEY",
        env = "TENANTFLOW_LOOKUP_API_KEY",
        hide_env_values = true
    )]
    lookup_api_key: Option<String>,

    /// Most lookups in flight at once, over the whole job.
    #[arg(long, value_name = "N", env = "TENANTFLOW_LOOKUP_MAX_IN_FLIGHT")]
    lookup_max_in_flight: Option<InFlight>,

    /// Time allowed to one lookup attempt.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_LOOKUP_TIMEOUT")]
    lookup_timeout: Option<AttemptTimeout>,

    /// Attempts of one lookup (connect errors, resets, timeouts, 5xx and 429 are retried
    /// with exponential back-off and jitter; other 4xx are not) before its events become
    /// dead letters
    /// `lookup_failed`.
    #[arg(long, value_name = "N", env = "TENANTFLOW_LOOKUP_ATTEMPTS")]
    lookup_attempts: Option<Attempts>,

    /// `unordered`: only a tenant's own records wait for its lookup (a tenant's records
    /// always stay in order); `ordered`: every record after a waiting one waits too.
    #[arg(long, value_name = "ORDER", value_parser = word::<tenantflow_runtime::Emission>, env = "TENANTFLOW_LOOKUP_ORDER")]
    lookup_order: Option<tenantflow_runtime::Emission>,

    /// Where churn scores come from: `embedded` (the `--model` file or the built-in
    /// model, in process), `sagemaker://ENDPOINT_NAME` (SageMaker runtime InvokeEndpoint,
    /// region and credentials from the AWS chain), `http(s)://…/invocations` (SageMaker's
    /// container contract: many rows per request) or `http(s)://…/assessChurn` (the
    /// original API Gateway route: one company per request).
    #[arg(long, value_name = "SCORER", env = "TENANTFLOW_SCORER")]
    scorer: Option<Scorer>,

    /// The SageMaker runtime's URL for `--scorer sagemaker://…` (e.g. a local scorer);
    /// default: the AWS chain's (`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`, else
    /// `AWS_ENDPOINT_URL`, else the region's).
    #[arg(long, value_name = "URL", env = "TENANTFLOW_SAGEMAKER_ENDPOINT_URL")]
    sagemaker_endpoint_url: Option<HttpUrl>,

    /// A scoring contract file (TOML): the columns a remote scorer takes, the industry
    /// as text or one-hot over a list, and how its answer is read (`tenantflow`,
    /// `sagemaker` or `churn`). Without it, the target's own. `contracts/linear-learner.toml`
    /// is the original deployment's SageMaker endpoint.
    #[arg(long, value_name = "FILE", env = "TENANTFLOW_SCORE_CONTRACT")]
    score_contract: Option<PathBuf>,

    /// How requests to an HTTP scorer are authenticated: `none`, `api-key`
    /// (--score-api-key in `x-api-key`, as an API Gateway usage plan wants) or `sigv4`
    /// (AWS Signature V4 for `execute-api`, credentials from the AWS chain). A
    /// `sagemaker://` scorer always signs with the AWS chain.
    #[arg(long, value_name = "AUTH", value_parser = word::<AuthKind>, env = "TENANTFLOW_SCORE_AUTH")]
    score_auth: Option<AuthKind>,

    /// The key of --score-auth api-key; never logged.
    #[arg(
        long,
        value_name = "KEY",
        env = "TENANTFLOW_SCORE_API_KEY",
        hide_env_values = true
    )]
    score_api_key: Option<String>,

    /// Most rows per request to a remote scorer (`/assessChurn` takes one); at most
    /// 50,000, within the 6 MB a SageMaker endpoint accepts.
    #[arg(long, value_name = "N", env = "TENANTFLOW_SCORE_BATCH")]
    score_batch: Option<ScoreBatch>,

    /// How long a request to a remote scorer waits for more rows before it goes
    /// unfilled.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_SCORE_LINGER")]
    score_linger: Option<Linger>,

    /// Most requests to a remote scorer in flight at once, over the whole job.
    #[arg(long, value_name = "N", env = "TENANTFLOW_SCORE_MAX_IN_FLIGHT")]
    score_max_in_flight: Option<InFlight>,

    /// Time allowed to one attempt of a scoring request.
    #[arg(long, value_name = "DURATION", env = "TENANTFLOW_SCORE_TIMEOUT")]
    score_timeout: Option<AttemptTimeout>,

    /// Attempts of one scoring request (connect errors, resets, timeouts, 5xx and 429 are
    /// retried with exponential back-off and jitter; other 4xx and unusable answers are
    /// not) before its rows become dead letters
    /// `scoring_failed`.
    #[arg(long, value_name = "N", env = "TENANTFLOW_SCORE_ATTEMPTS")]
    score_attempts: Option<Attempts>,

    /// `unordered`: a scored batch comes out as soon as no older batch waiting holds one
    /// of its tenants (a tenant's results always stay in order); `ordered`: batches come
    /// out in the order they were sent.
    #[arg(long, value_name = "ORDER", value_parser = word::<tenantflow_runtime::Emission>, env = "TENANTFLOW_SCORE_ORDER")]
    score_order: Option<tenantflow_runtime::Emission>,

    /// Ignore (and delete) the checkpoints of an earlier run and read every input from
    /// its start.
    #[arg(long, env = "TENANTFLOW_FROM_SCRATCH")]
    from_scratch: bool,

    /// Replace the results of an earlier run in the output folder.
    #[arg(long, env = "TENANTFLOW_OVERWRITE")]
    overwrite: bool,

    /// No progress line and no summary.
    #[arg(long, short, env = "TENANTFLOW_QUIET")]
    quiet: bool,

    /// Also write the summary, as JSON, to this file (its figures under the text
    /// summary's names; written with --quiet too).
    #[arg(long, value_name = "FILE", env = "TENANTFLOW_SUMMARY_JSON")]
    summary_json: Option<NonEmpty>,
}

/// Each flag that sets a key of the configuration, with the key: `overlay` sets the
/// keys of the flags given, and `--help` shows each flag's default as its key's.
macro_rules! flag_keys {
    ($( $flag:ident => $first:ident $(. $rest:ident)* ),* $(,)?) => {
        /// `(flag id, key)` of each flag that sets a key with a value.
        pub const FLAG_KEYS: &[(&str, &str)] = &[
            $( (stringify!($flag), concat!(stringify!($first) $(, ".", stringify!($rest))*)) ),*
        ];

        impl RunArgs {
            /// Sets the keys of the flags (and variables) given.
            fn overlay_valued(&mut self, config: &mut RunConfig) {
                $( if let Some(value) = self.$flag.take() {
                    config.$first $(.$rest)* = value.into();
                } )*
            }
        }
    };
}

flag_keys! {
    seed => sources.generator.seed,
    companies => sources.generator.companies,
    output => output.url,
    checkpoints => checkpoints.url,
    checkpoint_interval => checkpoints.interval,
    aggregates_interval => aggregates.interval,
    admin => admin.listen,
    lease_table => cluster.lease_table,
    worker_id => cluster.worker_id,
    compression => output.compression,
    max_open_files => output.max_open_files,
    max_file_age => output.max_file_age,
    format => output.format,
    partitioning => output.partitioning,
    partition_time => output.partition_time,
    model => scoring.model,
    input_format => sources.input_format,
    kind => sources.kind,
    workers => workers,
    allowed_lateness => event_time.allowed_lateness,
    max_event_time_skew => event_time.max_skew,
    missing_event_time => event_time.when_missing,
    max_record_size => sources.max_record_size,
    max_file_size => output.max_file_size,
    output_stream => output.stream,
    exit_when_idle => sources.exit_when_idle,
    tenant_manager => lookup.tenant_manager,
    lookup_auth => lookup.auth,
    lookup_api_key => lookup.api_key,
    tenant_ttl => lookup.ttl,
    unknown_tenant_ttl => lookup.unknown_ttl,
    lookup_max_in_flight => lookup.max_in_flight,
    lookup_timeout => lookup.timeout,
    lookup_attempts => lookup.attempts,
    lookup_order => lookup.order,
    scorer => scoring.scorer,
    sagemaker_endpoint_url => scoring.sagemaker_endpoint_url,
    score_batch => scoring.batch,
    score_linger => scoring.linger,
    score_max_in_flight => scoring.max_in_flight,
    score_timeout => scoring.timeout,
    score_attempts => scoring.attempts,
    score_order => scoring.order,
    score_contract => scoring.contract,
    score_auth => scoring.auth,
    score_api_key => scoring.api_key,
}

/// `run`'s flags with their defaults in `--help`: each its key's default, so that the
/// default is written once, in the configuration.
pub fn with_defaults_in_help(command: clap::Command) -> clap::Command {
    let mut pairs: Vec<(&str, &str)> = FLAG_KEYS.to_vec();
    pairs.push(("generate", "sources.generator.events"));
    config::defaults_in_help::<RunConfig>(command, &pairs)
}

/// What this invocation does besides configuring the job.
struct Invocation {
    overwrite: bool,
    from_scratch: bool,
    quiet: bool,
    summary_json: Option<NonEmpty>,
}

impl RunArgs {
    /// Reads `file` instead of any `--config` given.
    pub fn set_config(&mut self, file: PathBuf) {
        self.config = Some(file);
    }

    /// The configuration: the defaults, then the `--config` file, then the variables
    /// and flags given.
    pub fn layered(&mut self) -> Result<RunConfig, ConfigError> {
        let mut config = match &self.config {
            Some(path) => config::read::<RunConfig>(path)?,
            None => RunConfig::default(),
        };
        if let Some(path) = &self.properties {
            apply_properties(path, &mut config)?;
        }
        self.overlay_valued(&mut config);
        if !self.input.is_empty() {
            config.sources.inputs = std::mem::take(&mut self.input);
        }
        if let Some(events) = self.generate.take() {
            config.sources.generator.events = events;
            config.sources.inputs.clear();
        }
        if self.model_version_field {
            config.output.model_version_field = true;
        }
        Ok(config)
    }
}

/// Sets what the Managed Flink properties at `path` give, and says in the log what
/// else they hold.
fn apply_properties(path: &std::path::Path, config: &mut RunConfig) -> Result<(), ConfigError> {
    let properties = config::properties::Properties::read(path)?;
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .ok();
    let report = properties
        .apply(config, region.as_deref())
        .map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            place: String::new(),
            message,
        })?;
    for key in &report.unknown {
        tracing::warn!(property = %key, file = %path.display(), "A property tenantflow does not know: not used.");
    }
    for note in &report.notes {
        tracing::info!(file = %path.display(), "{note}");
    }
    Ok(())
}

/// A job ready to run, and what to say about it.
struct Plan {
    job: JobConfig,
    /// With a lease table: this worker's part, and the table.
    cluster: Option<(ClusterConfig, String)>,
    /// Where the admin server listens, if it runs.
    admin: Option<std::net::SocketAddr>,
    /// The inputs, as the summary names them.
    described: String,
}

/// Builds the job of `config`: opens the inputs, takes the output's lock, prepares the
/// output (resume or start over).
fn plan(config: RunConfig, invocation: &Invocation) -> Result<Plan> {
    let sources = &config.sources;
    let (stream_args, file_args): (Vec<&String>, Vec<&String>) = sources
        .inputs
        .iter()
        .partition(|arg| KinesisInput::is_kinesis(arg));
    let streams = stream_args
        .iter()
        .map(|arg| KinesisInput::parse(arg))
        .collect::<Result<Vec<_>, _>>()?;
    let specs: Vec<InputSpec> = if sources.inputs.is_empty() {
        vec![InputSpec::Generator(GeneratorConfig {
            events: sources.generator.events.get(),
            companies: sources.generator.companies.as_u32(),
            seed: sources.generator.seed,
        })]
    } else {
        file_args
            .iter()
            .map(|arg| InputSpec::from_arg(arg))
            .collect()
    };
    let inputs = Input::resolve(&specs, sources.input_format)?;
    let admin = config.admin.listen.get();
    let described = inputs
        .iter()
        .map(|i| i.name().to_owned())
        .chain(streams.iter().map(|s| format!("kinesis://{}", s.stream)))
        .collect::<Vec<_>>()
        .join(", ");
    let scoring = &config.scoring;
    if scoring.scorer.0 != ScorerTarget::Embedded && scoring.model.is_some() {
        return Err(UsageError(format!(
            "--model is the embedded scorer's (`scoring.model`); --scorer {} (`scoring.scorer`) scores remotely",
            scoring.scorer.0.shown()
        ))
        .into());
    }
    if scoring.scorer.0 == ScorerTarget::Embedded {
        let remote_only = [
            (
                scoring.contract.is_some(),
                "--score-contract (`scoring.contract`)",
            ),
            (
                scoring.auth != AuthKind::None || scoring.api_key.is_some(),
                "--score-auth and --score-api-key (`scoring.auth`, `scoring.api_key`)",
            ),
        ];
        if let Some((_, what)) = remote_only.iter().find(|(given, _)| *given) {
            return Err(UsageError(format!(
                "{what} are for a remote scorer; --scorer (`scoring.scorer`) is embedded"
            ))
            .into());
        }
    }
    if config.lookup.tenant_manager.is_none()
        && (config.lookup.auth != AuthKind::None || config.lookup.api_key.is_some())
    {
        return Err(UsageError(
            "--lookup-auth and --lookup-api-key (`lookup.auth`, `lookup.api_key`) are for the TenantManager; --tenant-manager (`lookup.tenant_manager`) is not set".into(),
        )
        .into());
    }
    let model = match &scoring.model {
        Some(path) => Model::load(path)?,
        None => Model::builtin(),
    };
    let workers = match config.workers {
        Some(n) => n.non_zero_usize(),
        None => std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN),
    };
    // At most 3650 days by its type.
    let lateness_days = u32::try_from(
        config
            .event_time
            .allowed_lateness
            .get()
            .as_secs()
            .div_ceil(86_400),
    )
    .unwrap_or(u32::MAX);
    let output_url = config.output.url.as_str();
    let output_location =
        Location::root(store::open(output_url).with_context(|| format!("--output {output_url}"))?);
    let checkpoints = CheckpointStore {
        location: match &config.checkpoints.url {
            Some(url) => Location::root(
                store::open(url.as_str()).with_context(|| format!("--checkpoints {url}"))?,
            ),
            None => output_location.child("_checkpoints"),
        },
    };
    check_inputs_outside(&specs, "--checkpoints", &checkpoints.location)?;
    let cluster = cluster_of(&config, &streams, &inputs, invocation)?;
    let mut locks = Vec::new();
    // With leases, many workers share the output: each shard's files, checkpoints and
    // commit point are its lease's, and no worker starts it over.
    let start = if cluster.is_some() {
        OutputStart::Resume
    } else {
        // One job at a time on an output: taken before anything in it is looked at.
        locks.push(OutputLock::acquire(
            &output_location,
            LockConfig::default(),
        )?);
        let (output_at, checkpoints_at) = (output_location.url(), checkpoints.location.url());
        if checkpoints_at != output_at && !checkpoints_at.starts_with(&format!("{output_at}/")) {
            locks.push(OutputLock::acquire(
                &checkpoints.location,
                LockConfig::default(),
            )?);
        }
        prepare_output(
            &output_location,
            &checkpoints,
            invocation.overwrite,
            invocation.from_scratch,
        )?
    };
    if start == OutputStart::Resume && cluster.is_none() {
        if inputs.iter().any(Input::is_stdin) {
            bail!(
                "{} holds the checkpoint of an earlier run, and stdin cannot be resumed (it cannot be positioned): pass --overwrite to start over, or choose another --output",
                checkpoints.location.url()
            );
        }
        tracing::info!(checkpoints = %checkpoints.location.url(), "Found a checkpoint: resuming (--from-scratch starts over).");
    }
    let staging = Staging {
        location: checkpoints.location.clone(),
    };
    let out = &config.output;
    let output = FileSinkConfig {
        output: output_location,
        staging,
        format: out.format,
        compression: out.compression,
        partitioning: out.partitioning,
        partition_time: out.partition_time,
        max_file_bytes: out.max_file_size.bytes(),
        max_file_age: out.max_file_age.get(),
        max_open_files: out.max_open_files.non_zero_usize(),
        model_version_field: out.model_version_field,
        name_tag: None,
        finish_at_checkpoint: false,
    };
    let lookup_auth = AuthConfig::new(config.lookup.auth, config.lookup.api_key.as_deref())
        .map_err(|e| UsageError(format!("`lookup.auth` (--lookup-auth): {e}")))?;
    let lookup = config
        .lookup
        .tenant_manager
        .clone()
        .map(|url| LookupConfig {
            url: url.into_string(),
            auth: lookup_auth,
            call: CallConfig {
                max_in_flight: config.lookup.max_in_flight.non_zero_usize(),
                timeout: config.lookup.timeout.get(),
                max_attempts: config.lookup.attempts.non_zero_u32(),
                backoff_base: BACKOFF_BASE,
                backoff_max: BACKOFF_MAX,
            },
            ttl: config.lookup.ttl.get(),
            unknown_ttl: config.lookup.unknown_ttl.get(),
            emission: config.lookup.order,
        });
    let remote_scoring = match &scoring.scorer.0 {
        ScorerTarget::Embedded => None,
        target => Some(ScoringConfig {
            target: target.clone(),
            contract: scoring
                .contract
                .as_deref()
                .map(ScoreContract::read)
                .transpose()
                .map_err(|e| UsageError(format!("`scoring.contract` (--score-contract): {e}")))?,
            auth: scoring_auth(scoring, target)?,
            endpoint_url: scoring
                .sagemaker_endpoint_url
                .clone()
                .map(HttpUrl::into_string),
            call: CallConfig {
                max_in_flight: scoring.max_in_flight.non_zero_usize(),
                timeout: scoring.timeout.get(),
                max_attempts: scoring.attempts.non_zero_u32(),
                backoff_base: BACKOFF_BASE,
                backoff_max: BACKOFF_MAX,
            },
            batch: scoring.batch.non_zero_usize(),
            linger: scoring.linger.get(),
            emission: scoring.order,
        }),
    };
    let job = JobConfig {
        inputs,
        streams,
        exit_when_idle: sources.exit_when_idle.map(LongSpan::get),
        output_stream: out.stream.clone(),
        default_kind: sources.kind,
        output,
        checkpoints,
        checkpoint_interval: config.checkpoints.interval.get(),
        aggregates_interval: config.aggregates.interval.get(),
        model,
        workers,
        retention: Retention::new(lateness_days),
        max_record_bytes: sources.max_record_size.as_usize(),
        event_time: EventTimeBounds {
            max_future_skew_ms: i64::try_from(config.event_time.max_skew.get().as_millis())
                .unwrap_or(i64::MAX),
        },
        file_missing_event_time: config.event_time.when_missing,
        lookup,
        scoring: remote_scoring,
        locks,
        shard: None,
        fence: None,
        resume_from: tenantflow_runtime::ResumeFrom::Latest,
        stop: None,
    };
    Ok(Plan {
        job,
        cluster,
        described,
        admin,
    })
}

/// This worker's part with a lease table (`cluster.lease_table`), checked against the
/// rest of the configuration.
fn cluster_of(
    config: &RunConfig,
    streams: &[KinesisInput],
    inputs: &[Input],
    invocation: &Invocation,
) -> Result<Option<(ClusterConfig, String)>> {
    let cluster = &config.cluster;
    let Some(table) = &cluster.lease_table else {
        return Ok(None);
    };
    let refuse = |why: &str| -> Result<Option<(ClusterConfig, String)>> {
        Err(UsageError(format!("--lease-table (`cluster.lease_table`): {why}")).into())
    };
    if streams.is_empty() {
        return refuse(
            "leases share a Kinesis stream's shards: give it as the first --input kinesis://STREAM",
        );
    }
    if !inputs.is_empty() {
        return refuse(
            "file inputs and the generator cannot be shared among workers: with leases, every input is a kinesis:// stream",
        );
    }
    if config.sources.exit_when_idle.is_some() {
        return refuse(
            "a worker runs until Ctrl-C or SIGTERM (its shards may come back to it); --exit-when-idle is for a job without leases",
        );
    }
    if invocation.overwrite || invocation.from_scratch {
        return refuse(
            "--overwrite and --from-scratch would delete other workers' results; delete the output and the lease table to start over",
        );
    }
    let timeout = cluster.lease_timeout.get();
    if cluster.lease_renew_interval.get() * 3 > timeout {
        return Err(UsageError(format!(
            "`cluster.lease_renew_interval` is {}, more than a third of `cluster.lease_timeout` ({}): a lease could expire between two renewals",
            humantime::format_duration(cluster.lease_renew_interval.get()),
            humantime::format_duration(timeout)
        ))
        .into());
    }
    let worker_id = match &cluster.worker_id {
        Some(id) => id.as_str().to_owned(),
        None => default_worker_id(),
    };
    Ok(Some((
        ClusterConfig {
            worker_id,
            settings: LeaseSettings {
                lease_timeout: timeout,
                renew_interval: cluster.lease_renew_interval.get(),
                take_interval: cluster.lease_take_interval.get(),
                max_take_per_round: cluster.max_leases_per_round.non_zero_usize().get(),
                max_steal_per_round: 1,
            },
            shard_sync_interval: cluster.shard_sync_interval.get(),
        },
        table.as_str().to_owned(),
    )))
}

/// A worker name unique among the live ones: host, process and a random suffix (a
/// restarted process is a new worker; its old leases expire).
pub(crate) fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tenantflow".to_owned());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

/// Runs the job and prints its summary.
pub fn run(mut args: RunArgs) -> Result<()> {
    let config = args.layered()?;
    let invocation = Invocation {
        overwrite: args.overwrite,
        from_scratch: args.from_scratch,
        quiet: args.quiet,
        summary_json: args.summary_json.take(),
    };
    let Plan {
        job: config,
        cluster,
        described: inputs,
        admin,
    } = plan(config, &invocation)?;
    if let Some((cluster, table)) = cluster {
        return run_worker(config, cluster, &table, admin, &invocation);
    }
    let quiet = invocation.quiet;
    let summary_json = invocation.summary_json;
    let has_streams = !config.streams.is_empty();
    let output = config.output.output.url();
    let format = config.output.extension();
    let model = match &config.scoring {
        Some(scoring) => format!("scorer {}", scoring.target.shown()),
        None if config.model.version() == config.model.name() => {
            format!("model {}", config.model.name())
        }
        None => format!("model {}", config.model.version()),
    };
    tracing::info!(%inputs, %output, scoring = %model, workers = config.workers, "Starting run.");
    let metrics = Arc::new(Metrics::default());
    let _admin = admin
        .map(|addr| start_admin(addr, &metrics))
        .transpose()?
        .flatten();
    let live = Arc::clone(&metrics);
    let progress = Progress::start(!quiet, move |secs| {
        let m = live.snapshot();
        format!(
            "{} records read · {} results · {} dead letters · {}/s",
            thousands(m.lines_read),
            thousands(m.results),
            thousands(m.dead_letters_total()),
            thousands((m.lines_read as f64 / secs) as u64),
        )
    });
    let result = tenantflow_runtime::run(config, &metrics);
    progress.finish();
    let summary = result.context("the run failed")?;
    if let Some(n) = summary.resumed_from
        && summary.metrics.lines_read == 0
        && !has_streams
    {
        tracing::warn!(
            checkpoint = n,
            "Nothing left to read: the run this one resumed had read every input to its end. --overwrite (or another --output) runs them again."
        );
    }
    if let Some(path) = &summary_json {
        let json = crate::summary::to_json(&summary, &inputs, &output, &format, &model);
        let mut text = serde_json::to_string_pretty(&json).context("encoding the summary")?;
        text.push('\n');
        std::fs::write(path.as_str(), text)
            .with_context(|| format!("writing --summary-json {path}"))?;
    }
    if !quiet {
        print_summary(&summary, &inputs, &output, format, &model);
    }
    Ok(())
}

/// Runs this worker's part of a job shared through leases, until Ctrl-C or SIGTERM.
fn run_worker(
    template: JobConfig,
    cluster: ClusterConfig,
    table: &str,
    admin: Option<std::net::SocketAddr>,
    invocation: &Invocation,
) -> Result<()> {
    let output = template.output.output.url();
    tracing::info!(worker = %cluster.worker_id, lease_table = %table, %output, "Starting a worker: its shards come from the lease table.");
    let metrics = Arc::new(Metrics::default());
    let _admin = admin
        .map(|addr| start_admin(addr, &metrics))
        .transpose()?
        .flatten();
    let store = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a runtime")?;
        runtime.block_on(DynamoLeaseStore::connect(table))
    };
    let worker = cluster.worker_id.clone();
    let summary =
        tenantflow_runtime::cluster::run_cluster(template, cluster, Arc::new(store), &metrics)
            .context("the worker failed")?;
    let m = metrics.snapshot();
    if let Some(path) = &invocation.summary_json {
        let json = serde_json::json!({
            "worker": worker,
            "leasesTaken": summary.taken,
            "leasesLost": summary.lost,
            "shardJobs": summary.jobs.len(),
            "recordsRead": m.lines_read,
            "results": m.results,
            "deadLetters": m.dead_letters_total(),
            "notKeyedByTenant": m.dead_letters[tenantflow_core::DeadLetterReason::NotKeyedByTenant.index()],
            "otherShardRecords": m.other_shard_records,
        });
        let mut text = serde_json::to_string_pretty(&json).context("encoding the summary")?;
        text.push('\n');
        std::fs::write(path.as_str(), text)
            .with_context(|| format!("writing --summary-json {path}"))?;
    }
    if !invocation.quiet {
        println!(
            "worker {worker}: {} leases taken, {} lost; {} records read, {} results, {} dead letters",
            summary.taken,
            summary.lost,
            thousands(m.lines_read),
            thousands(m.results),
            thousands(m.dead_letters_total()),
        );
    }
    Ok(())
}

/// Starts the admin server on `addr`. The default address taken (another run on this
/// machine has it) is a warning, not an error: an address the user chose must work.
fn start_admin(
    addr: std::net::SocketAddr,
    metrics: &Arc<Metrics>,
) -> Result<Option<tenantflow_admin::AdminServer>> {
    match tenantflow_admin::AdminServer::start(addr, Arc::clone(metrics)) {
        Ok(server) => Ok(Some(server)),
        Err(tenantflow_admin::AdminError::Listen { source, .. })
            if source.kind() == std::io::ErrorKind::AddrInUse
                && Some(addr) == crate::config::run::DEFAULT_ADMIN_LISTEN.get() =>
        {
            tracing::warn!(%addr, "The admin server's default address is taken (another run?): running without it. --admin ADDR (or off) says where.");
            Ok(None)
        }
        Err(e) => Err(UsageError(format!("--admin (admin.listen): {e}")).into()),
    }
}

fn print_summary(s: &RunSummary, inputs: &str, output: &str, format: String, model: &str) {
    let m = &s.metrics;
    let secs = s.elapsed.as_secs_f64().max(1e-9);
    println!(
        "tenantflow: read {} records from {inputs} in {:.2} s: {} records/s on {} workers",
        thousands(m.lines_read),
        secs,
        thousands((m.lines_read as f64 / secs) as u64),
        s.workers
    );
    println!("  job events        {:>14}", thousands(m.job_events));
    println!(
        "  company records   {:>14}  ({} tenants in state)",
        thousands(m.company_records),
        thousands(s.tenants as u64)
    );
    println!(
        "  results           {:>14}  -> {} ({}, {} files, {:.1} MB)",
        thousands(m.results),
        output,
        format,
        thousands(s.files.files),
        s.files.bytes as f64 / 1e6
    );
    if let Some(w) = &s.output_stream {
        println!(
            "  to stream         {:>14}  ({} requests, {} retried, {} throttled)",
            thousands(w.records),
            thousands(w.requests),
            thousands(w.retries),
            thousands(w.throttles)
        );
    }
    if let Some((attempts, retries, failures)) = s.lookup_calls {
        println!(
            "  tenant lookups    {:>14}  ({} profiles fetched; {} requests, {} retried, {} failed for good)",
            thousands(m.lookups),
            thousands(m.tenants_fetched),
            thousands(attempts),
            thousands(retries),
            thousands(failures)
        );
    }
    if let Some((attempts, retries, failures)) = s.score_calls {
        println!(
            "  scoring requests  {:>14}  ({} retried, {} failed for good)",
            thousands(attempts),
            thousands(retries),
            thousands(failures)
        );
    }
    println!(
        "  churn flags set   {:>14}  ({model})",
        thousands(m.churn_flags)
    );
    let reasons = DeadLetterReason::ALL
        .iter()
        .map(|r| format!("{r} {}", thousands(m.dead_letters[r.index()])))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "  dead letters      {:>14}  ({reasons})",
        thousands(m.dead_letters_total())
    );
    if m.dead_letters_total() > 0 {
        println!("                    {:>14}  -> {output}/_rejected", "");
    }
    let c = &s.checkpoints;
    println!(
        "  checkpoints       {:>14}  (last #{}, {} files committed, longest {:.2} s{})",
        thousands(c.checkpoints),
        c.last,
        thousands(c.committed),
        c.longest.as_secs_f64(),
        match s.resumed_from {
            Some(n) => format!("; resumed from #{n}"),
            None => String::new(),
        }
    );
    println!(
        "  skipped           {:>14}  empty lines; {} CSV header lines",
        thousands(m.empty_lines),
        thousands(m.header_lines)
    );
    if s.stopped_by_signal {
        println!("  stopped by a signal: everything read before it was processed and written");
    }
    if m.event_time_from_arrival > 0 {
        println!(
            "  arrival time      {:>14}  job events had no creationDate and took their read time",
            thousands(m.event_time_from_arrival)
        );
    }
    if m.redriven > 0 {
        println!(
            "  re-driven         {:>14}  dead letters read again (their records are counted above)",
            thousands(m.redriven)
        );
    }
}

/// Refuses a local `place` that holds an input, or lies inside an input folder:
/// starting over deletes what runs write there, and a later run would read it back.
fn check_inputs_outside(specs: &[InputSpec], flag: &str, place: &Location) -> Result<()> {
    let Some(folder) = place.local_path() else {
        return Ok(());
    };
    let folder = absolute(&folder);
    for spec in specs {
        if let InputSpec::Path(input) = spec {
            let input_abs = absolute(input);
            if input_abs.starts_with(&folder) || folder.starts_with(&input_abs) {
                return Err(UsageError(format!(
                    "{flag} {} overlaps the input {}: checkpoints must not share a folder with inputs",
                    folder.display(),
                    input.display()
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// `path` made absolute, symbolic links resolved as far as it exists.
fn absolute(path: &std::path::Path) -> PathBuf {
    if let Ok(canonical) = path.canonicalize() {
        return canonical;
    }
    let lexical = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (lexical.parent(), lexical.file_name()) {
        (Some(parent), Some(name)) => absolute(parent).join(name),
        _ => lexical,
    }
}

/// The scorer's authentication: an API key or SigV4 for an HTTP scorer; a `sagemaker://`
/// scorer signs with the AWS chain by itself, so it takes `none` or `sigv4` only.
fn scoring_auth(
    scoring: &crate::config::run::Scoring,
    target: &ScorerTarget,
) -> Result<AuthConfig, UsageError> {
    let auth = AuthConfig::new(scoring.auth, scoring.api_key.as_deref())
        .map_err(|e| UsageError(format!("`scoring.auth` (--score-auth): {e}")))?;
    if matches!(target, ScorerTarget::SageMaker(_)) && matches!(auth, AuthConfig::ApiKey(_)) {
        return Err(UsageError(format!(
            "`scoring.auth` (--score-auth): {} is called through the AWS SDK, which signs with the AWS chain; an API key is for HTTP scorers",
            target.shown()
        )));
    }
    Ok(auth)
}
