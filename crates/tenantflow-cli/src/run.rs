//! `tenantflow run`: flags → validated job config → runtime → summary.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use tenantflow_core::DeadLetterReason;
use tenantflow_core::decode::DefaultKind;
use tenantflow_core::time::EventTimeBounds;
use tenantflow_kinesis::url::KinesisInput;
use tenantflow_operators::score::Model;
use tenantflow_operators::window::Retention;
use tenantflow_runtime::{
    CheckpointStore, JobConfig, LockConfig, LookupConfig, Metrics, MissingEventTime, OutputLock,
    OutputStart, RunSummary, ScorerTarget, ScoringConfig, prepare_output,
};
use tenantflow_sinks::encoding::Format;
use tenantflow_sinks::file::{Compression, FileSinkConfig, Partitioning};
use tenantflow_sinks::store;
use tenantflow_sinks::upload::{Location, Staging};
use tenantflow_sources::generator::GeneratorConfig;
use tenantflow_sources::{Input, InputFormat, InputSpec};

use crate::flags::{self, UsageError};
use crate::progress::{Progress, thousands};

/// Flags of `tenantflow run`. Each can also be set by its `TENANTFLOW_*` variable.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Input: an NDJSON or CSV file, a folder of them (read in name order), `.gz` files,
    /// `-` for stdin, or a Kinesis stream
    /// `kinesis://STREAM[?start=trim_horizon|latest|at_timestamp:TIME&kind=job|company|auto]`.
    /// Repeatable; files are read in the order given, streams concurrently with them. In a
    /// folder, names starting with `.` or `_` are skipped.
    #[arg(
        long,
        value_name = "PATH",
        env = "TENANTFLOW_INPUT",
        value_delimiter = ','
    )]
    input: Vec<String>,

    /// Generate N events of a W1-like workload instead of reading input. With neither
    /// --input nor --generate, 1,000,000 events are generated.
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "input",
        value_parser = flags::count::<u64>(0, 10_000_000_000),
        env = "TENANTFLOW_GENERATE"
    )]
    generate: Option<u64>,

    /// Seed of the generator.
    #[arg(long, value_name = "S", default_value_t = 42, env = "TENANTFLOW_SEED")]
    seed: u64,

    /// Tenants of the generator.
    #[arg(
        long,
        value_name = "C",
        default_value_t = 10_000,
        value_parser = flags::count::<u32>(1, 100_000_000),
        env = "TENANTFLOW_COMPANIES"
    )]
    companies: u32,

    /// Where results go (partitioned by event hour; dead letters under `_rejected/`): a
    /// folder, `file:///path`, `s3://bucket/prefix` (settings from the AWS environment,
    /// `AWS_ENDPOINT_URL_S3` for a local server) or `memory://`.
    #[arg(
        long,
        value_name = "URL",
        default_value = "./tenantflow-out",
        value_parser = flags::non_empty,
        env = "TENANTFLOW_OUTPUT"
    )]
    output: String,

    /// Where checkpoints go (a URL as for --output); default `_checkpoints/` under the
    /// output.
    #[arg(long, value_name = "URL", value_parser = flags::non_empty, env = "TENANTFLOW_CHECKPOINTS")]
    checkpoints: Option<String>,

    /// How often a checkpoint is taken (files committed, state saved); `off` for only
    /// at the end of the run.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval, env = "TENANTFLOW_CHECKPOINT_INTERVAL")]
    checkpoint_interval: Interval,

    /// Ignore (and delete) the checkpoints of an earlier run and read every input from
    /// its start.
    #[arg(long, env = "TENANTFLOW_FROM_SCRATCH")]
    from_scratch: bool,

    /// Compression of NDJSON and CSV files.
    #[arg(long, value_enum, default_value_t = CompressionArg::None, env = "TENANTFLOW_COMPRESSION")]
    compression: CompressionArg,

    /// Partitions a worker keeps a file open in at once; past it the least recently
    /// written file is finished (each open file buffers up to one part: 1 MiB on disk,
    /// 8 MiB on S3).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 32,
        value_parser = flags::count::<usize>(1, 4096),
        env = "TENANTFLOW_MAX_OPEN_FILES"
    )]
    max_open_files: usize,

    /// A result file is finished at the first checkpoint after it is this old.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = flags::duration(Duration::from_secs(1), flags::days(7)), env = "TENANTFLOW_MAX_FILE_AGE")]
    max_file_age: Duration,

    /// Result format.
    #[arg(long, value_enum, default_value_t = FormatArg::Ndjson, env = "TENANTFLOW_FORMAT")]
    format: FormatArg,

    /// Folder layout of result files.
    #[arg(long, value_enum, default_value_t = PartitioningArg::Hourly, env = "TENANTFLOW_PARTITIONING")]
    partitioning: PartitioningArg,

    /// Replace the results of an earlier run in the output folder.
    #[arg(long, env = "TENANTFLOW_OVERWRITE")]
    overwrite: bool,

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

    /// Line format of inputs; `auto` takes CSV for `.csv` (`.csv.gz`) names, else NDJSON.
    #[arg(long, value_enum, default_value_t = InputFormatArg::Auto, env = "TENANTFLOW_INPUT_FORMAT")]
    input_format: InputFormatArg,

    /// Kind of NDJSON records without a `type` tag; `auto`: with `industry` a company,
    /// else a job event.
    #[arg(long, value_enum, default_value_t = KindArg::Auto, env = "TENANTFLOW_KIND")]
    kind: KindArg,

    /// Keyed workers; default: one per core.
    #[arg(long, value_name = "N", value_parser = flags::count::<usize>(1, MAX_WORKERS), env = "TENANTFLOW_WORKERS")]
    workers: Option<usize>,

    /// How far behind its tenant's newest event an event may be and still count (e.g.
    /// `90d`; rounded up to whole days); later ones become dead letters `too_late`.
    #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = flags::duration(Duration::ZERO, flags::days(3650)), env = "TENANTFLOW_ALLOWED_LATENESS")]
    allowed_lateness: Duration,

    /// How far ahead of the wall clock an event time may be (e.g. `1d`, `2h`); later
    /// ones, and any before 2000-01-01, become dead letters `event_time_out_of_range`.
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = flags::duration(Duration::ZERO, flags::days(3650)), env = "TENANTFLOW_MAX_EVENT_TIME_SKEW")]
    max_event_time_skew: Duration,

    /// What a job event read from a file without `creationDate` becomes: `reject` (a
    /// dead letter `missing_event_time`) or `arrival` (it takes the time it was read).
    /// Stream records always take their arrival time.
    #[arg(long, value_enum, value_name = "WHAT", default_value_t = MissingEventTimeArg::Reject, env = "TENANTFLOW_MISSING_EVENT_TIME")]
    missing_event_time: MissingEventTimeArg,

    /// Longest accepted record (bytes, or with KiB/MiB); longer ones become dead
    /// letters `record_too_large`.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = flags::size_in(64, 1 << 30), env = "TENANTFLOW_MAX_RECORD_SIZE")]
    max_record_size: usize,

    /// A result file is completed once it reaches this size (bytes, or KiB/MiB/GiB).
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = flags::size_in(1 << 10, 1 << 40), env = "TENANTFLOW_MAX_FILE_SIZE")]
    max_file_size: usize,

    /// Also write every result, as JSON with partition key companyID, to this Kinesis
    /// stream (e.g. `enrichedcompanies`).
    #[arg(long, value_name = "STREAM", env = "TENANTFLOW_OUTPUT_STREAM")]
    output_stream: Option<String>,

    /// Stop reading Kinesis streams once every shard has been idle this long (e.g. `5s`);
    /// without it, streams are read until Ctrl-C or SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = flags::duration(Duration::ZERO, flags::days(3650)), env = "TENANTFLOW_EXIT_WHEN_IDLE")]
    exit_when_idle: Option<Duration>,

    /// The TenantManager's base URL (e.g. `http://127.0.0.1:8080`): a job event whose
    /// tenant has no profile yet waits for `GET /api/v1/tenants/{id}` (one request per
    /// tenant; the tenant's later records wait behind it, in order). Without it, such
    /// events are dead letters `unknown_company` at once.
    #[arg(long, value_name = "URL", env = "TENANTFLOW_TENANT_MANAGER")]
    tenant_manager: Option<String>,

    /// How long a profile fetched from the TenantManager is used before it is fetched
    /// again (unless a companies input updates it first).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = flags::duration(Duration::ZERO, flags::days(3650)), env = "TENANTFLOW_TENANT_TTL")]
    tenant_ttl: Duration,

    /// How long a tenant the TenantManager answered 404 (or 204) for is taken as unknown without
    /// asking again (its events are dead letters `unknown_company` meanwhile; a companies
    /// input record for it ends this at once). `0s`: ask for every event.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = flags::duration(Duration::ZERO, flags::days(3650)), env = "TENANTFLOW_UNKNOWN_TENANT_TTL")]
    unknown_tenant_ttl: Duration,

    /// Most lookups in flight at once, over the whole job.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        value_parser = flags::count::<usize>(1, 4096),
        env = "TENANTFLOW_LOOKUP_MAX_IN_FLIGHT"
    )]
    lookup_max_in_flight: usize,

    /// Time allowed to one lookup attempt.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = flags::duration(Duration::from_millis(10), Duration::from_secs(600)), env = "TENANTFLOW_LOOKUP_TIMEOUT")]
    lookup_timeout: Duration,

    /// Attempts of one lookup (connect errors, resets, timeouts, 5xx and 429 are retried
    /// with exponential back-off and jitter; other 4xx are not) before its events become
    /// dead letters
    /// `lookup_failed`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        value_parser = flags::count::<u32>(1, 100),
        env = "TENANTFLOW_LOOKUP_ATTEMPTS"
    )]
    lookup_attempts: u32,

    /// `unordered`: only a tenant's own records wait for its lookup (a tenant's records
    /// always stay in order); `ordered`: every record after a waiting one waits too.
    #[arg(
        long,
        value_name = "ORDER",
        default_value = "unordered",
        env = "TENANTFLOW_LOOKUP_ORDER"
    )]
    lookup_order: tenantflow_runtime::Emission,

    /// Where churn scores come from: `embedded` (the `--model` file or the built-in
    /// model, in process), `sagemaker://ENDPOINT_NAME` (SageMaker runtime InvokeEndpoint,
    /// region and credentials from the AWS chain), `http(s)://…/invocations` (SageMaker's
    /// container contract: many rows per request) or `http(s)://…/assessChurn` (the
    /// original API Gateway route: one company per request).
    #[arg(long, value_name = "SCORER", default_value = "embedded", value_parser = parse_scorer, env = "TENANTFLOW_SCORER")]
    scorer: ScorerTarget,

    /// The SageMaker runtime's URL for `--scorer sagemaker://…` (e.g. a local scorer);
    /// default: the AWS chain's (`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`, else
    /// `AWS_ENDPOINT_URL`, else the region's).
    #[arg(long, value_name = "URL", value_parser = flags::http_url, env = "TENANTFLOW_SAGEMAKER_ENDPOINT_URL")]
    sagemaker_endpoint_url: Option<String>,

    /// Most rows per request to a remote scorer (`/assessChurn` takes one); at most
    /// 50,000, within the 6 MB a SageMaker endpoint accepts.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        value_parser = flags::count::<usize>(1, MAX_SCORE_BATCH as u64),
        env = "TENANTFLOW_SCORE_BATCH"
    )]
    score_batch: usize,

    /// How long a request to a remote scorer waits for more rows before it goes
    /// unfilled.
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = flags::duration(Duration::ZERO, Duration::from_secs(60)), env = "TENANTFLOW_SCORE_LINGER")]
    score_linger: Duration,

    /// Most requests to a remote scorer in flight at once, over the whole job.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 16,
        value_parser = flags::count::<usize>(1, 4096),
        env = "TENANTFLOW_SCORE_MAX_IN_FLIGHT"
    )]
    score_max_in_flight: usize,

    /// Time allowed to one attempt of a scoring request.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = flags::duration(Duration::from_millis(10), Duration::from_secs(600)), env = "TENANTFLOW_SCORE_TIMEOUT")]
    score_timeout: Duration,

    /// Attempts of one scoring request (connect errors, resets, timeouts, 5xx and 429 are
    /// retried with exponential back-off and jitter; other 4xx and unusable answers are
    /// not) before its rows become dead letters
    /// `scoring_failed`.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        value_parser = flags::count::<u32>(1, 100),
        env = "TENANTFLOW_SCORE_ATTEMPTS"
    )]
    score_attempts: u32,

    /// `unordered`: a scored batch comes out as soon as no older batch waiting holds one
    /// of its tenants (a tenant's results always stay in order); `ordered`: batches come
    /// out in the order they were sent.
    #[arg(
        long,
        value_name = "ORDER",
        default_value = "unordered",
        env = "TENANTFLOW_SCORE_ORDER"
    )]
    score_order: tenantflow_runtime::Emission,

    /// No progress line and no summary.
    #[arg(long, short, env = "TENANTFLOW_QUIET")]
    quiet: bool,

    /// Also write the summary, as JSON, to this file (its figures under the text
    /// summary's names; written with --quiet too).
    #[arg(long, value_name = "FILE", value_parser = flags::non_empty, env = "TENANTFLOW_SUMMARY_JSON")]
    summary_json: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    Ndjson,
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
}

/// A checkpoint interval, or none.
#[derive(Debug, Clone, Copy)]
struct Interval(Option<Duration>);

fn parse_interval(text: &str) -> Result<Interval, String> {
    if text == "off" {
        return Ok(Interval(None));
    }
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}`: {e} (e.g. 10s, 1m, off)"))?;
    if d < Duration::from_millis(100) {
        return Err(format!("`{text}` is too short: at least 100ms"));
    }
    Ok(Interval(Some(d)))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PartitioningArg {
    /// `yyyy-MM-dd--HH/`, the original layout.
    Hourly,
    /// `dt=YYYY-MM-DD/hour=HH/`.
    Hive,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InputFormatArg {
    Auto,
    Ndjson,
    Csv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MissingEventTimeArg {
    /// A dead letter `missing_event_time`.
    Reject,
    /// The time the record was read.
    Arrival,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Auto,
    Job,
    Company,
}

impl RunArgs {
    fn into_job(self) -> Result<(JobConfig, bool, String)> {
        let (stream_args, file_args): (Vec<&String>, Vec<&String>) = self
            .input
            .iter()
            .partition(|arg| KinesisInput::is_kinesis(arg));
        let streams = stream_args
            .iter()
            .map(|arg| KinesisInput::parse(arg))
            .collect::<Result<Vec<_>, _>>()?;
        let specs: Vec<InputSpec> = if self.input.is_empty() {
            vec![InputSpec::Generator(GeneratorConfig {
                events: self.generate.unwrap_or(GeneratorConfig::default().events),
                companies: self.companies,
                seed: self.seed,
            })]
        } else {
            file_args
                .iter()
                .map(|arg| InputSpec::from_arg(arg))
                .collect()
        };
        let input_format = match self.input_format {
            InputFormatArg::Auto => InputFormat::Auto,
            InputFormatArg::Ndjson => InputFormat::Ndjson,
            InputFormatArg::Csv => InputFormat::Csv,
        };
        let inputs = Input::resolve(&specs, input_format)?;
        let described = inputs
            .iter()
            .map(|i| i.name().to_owned())
            .chain(streams.iter().map(|s| format!("kinesis://{}", s.stream)))
            .collect::<Vec<_>>()
            .join(", ");
        if self.scorer != ScorerTarget::Embedded && self.model.is_some() {
            return Err(UsageError(format!(
                "--model is the embedded scorer's; --scorer {} scores remotely",
                self.scorer.shown()
            ))
            .into());
        }
        let model = match &self.model {
            Some(path) => Model::load(path)?,
            None => Model::builtin(),
        };
        let workers = match self.workers {
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        // At most 3650 days by its parser.
        let lateness_days =
            u32::try_from(self.allowed_lateness.as_secs().div_ceil(86_400)).unwrap_or(u32::MAX);
        let output_location = Location::root(
            store::open(&self.output).with_context(|| format!("--output {}", self.output))?,
        );
        let checkpoints = CheckpointStore {
            location: match &self.checkpoints {
                Some(url) => Location::root(
                    store::open(url).with_context(|| format!("--checkpoints {url}"))?,
                ),
                None => output_location.child("_checkpoints"),
            },
        };
        check_inputs_outside(&specs, "--checkpoints", &checkpoints.location)?;
        // One job at a time on an output: taken before anything in it is looked at.
        let mut locks = vec![OutputLock::acquire(
            &output_location,
            LockConfig::default(),
        )?];
        let (output_url, checkpoints_url) = (output_location.url(), checkpoints.location.url());
        if checkpoints_url != output_url && !checkpoints_url.starts_with(&format!("{output_url}/"))
        {
            locks.push(OutputLock::acquire(
                &checkpoints.location,
                LockConfig::default(),
            )?);
        }
        let start = prepare_output(
            &output_location,
            &checkpoints,
            self.overwrite,
            self.from_scratch,
        )?;
        if start == OutputStart::Resume {
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
        let mut output = FileSinkConfig::new(output_location, staging);
        output.compression = match self.compression {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
        };
        output.max_file_age = self.max_file_age;
        output.max_open_files = self.max_open_files;
        output.format = match self.format {
            FormatArg::Ndjson => Format::Ndjson,
            FormatArg::Csv => Format::Csv,
            FormatArg::Parquet => Format::Parquet,
        };
        output.partitioning = match self.partitioning {
            PartitioningArg::Hourly => Partitioning::Hourly,
            PartitioningArg::Hive => Partitioning::Hive,
        };
        output.max_file_bytes = self.max_file_size as u64;
        output.model_version_field = self.model_version_field;
        let config = JobConfig {
            inputs,
            streams,
            exit_when_idle: self.exit_when_idle,
            output_stream: self.output_stream,
            default_kind: match self.kind {
                KindArg::Auto => DefaultKind::Infer,
                KindArg::Job => DefaultKind::Job,
                KindArg::Company => DefaultKind::Company,
            },
            output,
            checkpoints,
            checkpoint_interval: self.checkpoint_interval.0,
            model,
            workers,
            retention: Retention::new(lateness_days),
            max_record_bytes: self.max_record_size,
            event_time: EventTimeBounds {
                max_future_skew_ms: i64::try_from(self.max_event_time_skew.as_millis())
                    .unwrap_or(i64::MAX),
            },
            file_missing_event_time: match self.missing_event_time {
                MissingEventTimeArg::Reject => MissingEventTime::DeadLetter,
                MissingEventTimeArg::Arrival => MissingEventTime::ArrivalTime,
            },
            lookup: match self.tenant_manager {
                Some(url) => {
                    let mut lookup = LookupConfig::new(url);
                    lookup.ttl = self.tenant_ttl;
                    lookup.unknown_ttl = self.unknown_tenant_ttl;
                    lookup.emission = self.lookup_order;
                    lookup.call.max_in_flight = self.lookup_max_in_flight;
                    lookup.call.timeout = self.lookup_timeout;
                    lookup.call.max_attempts = self.lookup_attempts;
                    Some(lookup)
                }
                None => None,
            },
            scoring: match self.scorer {
                ScorerTarget::Embedded => None,
                target => {
                    let mut scoring = ScoringConfig::new(target);
                    scoring.endpoint_url = self.sagemaker_endpoint_url;
                    scoring.batch = self.score_batch;
                    scoring.linger = self.score_linger;
                    scoring.emission = self.score_order;
                    scoring.call.max_in_flight = self.score_max_in_flight;
                    scoring.call.timeout = self.score_timeout;
                    scoring.call.max_attempts = self.score_attempts;
                    Some(scoring)
                }
            },
            locks,
        };
        Ok((config, self.quiet, described))
    }
}

/// Runs the job and prints its summary.
pub fn run(mut args: RunArgs) -> Result<()> {
    let summary_json = args.summary_json.take();
    let (config, quiet, inputs) = args.into_job()?;
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
        std::fs::write(path, text).with_context(|| format!("writing --summary-json {path}"))?;
    }
    if !quiet {
        print_summary(&summary, &inputs, &output, format, &model);
    }
    Ok(())
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

/// Most rows per scoring request: about 60 bytes a CSV row, within SageMaker's 6 MB.
const MAX_SCORE_BATCH: usize = 50_000;

/// Most keyed workers: each is a thread with its own open files and queues.
const MAX_WORKERS: u64 = 256;

fn parse_scorer(text: &str) -> Result<ScorerTarget, String> {
    ScorerTarget::parse(text).map_err(|e| e.to_string())
}
