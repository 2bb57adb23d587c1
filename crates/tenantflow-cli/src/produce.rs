//! `tenantflow produce`: publish records to a stream, partition key companyID.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;

use tenantflow_core::dead_letter::Redriven;
use tenantflow_core::decode::{Decoder, DefaultKind};
use tenantflow_kinesis::writer::RecordWriter;
use tenantflow_sources::generator::GeneratorConfig;
use tenantflow_sources::lines::{Line, LineReader, ReadError};
use tenantflow_sources::{Input, InputFormat, InputSpec};

use crate::flags;
use crate::progress::{Progress, thousands};

/// Lines handed from the reading thread to the writer at a time.
const CHUNK: usize = 1024;

/// Publish job events, companies or W1's mixed lines to a Kinesis stream, in order per
/// tenant (partition key = companyID), as fast as the stream's shards allow.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The stream.
    #[arg(long, value_name = "STREAM")]
    stream: String,

    /// NDJSON (or CSV) files, folders, `.gz`, or `-` for stdin; each line becomes a record.
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present = "generate",
        conflicts_with = "generate"
    )]
    input: Vec<String>,

    /// Publish N events of the built-in W1-like generator instead.
    #[arg(long, value_name = "N", value_parser = flags::count::<u64>(0, 10_000_000_000))]
    generate: Option<u64>,

    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Tenants of the generator.
    #[arg(long, default_value_t = 10_000, value_parser = flags::count::<u32>(1, 100_000_000))]
    companies: u32,

    /// Pack each tenant's records into KPL aggregated records.
    #[arg(long)]
    aggregate: bool,

    /// Put each record with a random partition key (from --seed), as the original
    /// system's producers did: a tenant's records then spread over the shards, which
    /// `tenantflow repartition` undoes.
    #[arg(long, conflicts_with = "aggregate")]
    random_keys: bool,

    /// Give up, with an error, after this long without a record acknowledged (each
    /// retry is shown, at most one line per 5 s).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = flags::duration(std::time::Duration::from_millis(100), std::time::Duration::from_secs(3600)))]
    give_up_after: std::time::Duration,

    /// No progress line and no summary.
    #[arg(long, short)]
    quiet: bool,
}

struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
}

/// Runs the command.
pub fn run(args: ProduceArgs) -> Result<()> {
    let specs: Vec<InputSpec> = match args.generate {
        Some(events) => vec![InputSpec::Generator(GeneratorConfig {
            events,
            companies: args.companies,
            seed: args.seed,
        })],
        None => args.input.iter().map(|a| InputSpec::from_arg(a)).collect(),
    };
    let inputs = Input::resolve(&specs, InputFormat::Auto)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let counters = Arc::new(Counters {
        queued: AtomicU64::new(0),
        sent: AtomicU64::new(0),
    });
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<(String, Vec<u8>)>>(8);
    let reader_counters = Arc::clone(&counters);
    let random_keys = args.random_keys.then_some(args.seed);
    let reader =
        std::thread::spawn(move || read_records(&inputs, &tx, &reader_counters, random_keys));
    let live = Arc::clone(&counters);
    let progress = Progress::start(!args.quiet, move |secs| {
        let sent = live.sent.load(Ordering::Relaxed);
        format!(
            "{} records read · {} published · {}/s",
            thousands(live.queued.load(Ordering::Relaxed)),
            thousands(sent),
            thousands((sent as f64 / secs) as u64)
        )
    });
    let started = Instant::now();
    let stream = args.stream.clone();
    let aggregate = args.aggregate;
    let give_up_after = args.give_up_after;
    let sent_counter = Arc::clone(&counters);
    let result = runtime.block_on(async move {
        let client = tenantflow_kinesis::client::connect().await;
        let mut writer = RecordWriter::new(client, &stream, aggregate).give_up_after(give_up_after);
        while let Some(chunk) = rx.recv().await {
            for (key, data) in chunk {
                writer.send(&key, data).await?;
                sent_counter
                    .sent
                    .store(writer.stats().records, Ordering::Relaxed);
            }
        }
        writer.flush().await?;
        Ok::<_, tenantflow_kinesis::KinesisError>(writer.stats())
    });
    progress.finish();
    let skipped = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reading thread panicked"))??;
    let stats = result.with_context(|| format!("publishing to stream {}", args.stream))?;
    if !args.quiet {
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        println!(
            "tenantflow: published {} records ({:.1} MB) to {} in {:.2} s: {} records/s",
            thousands(stats.records),
            stats.bytes as f64 / 1e6,
            args.stream,
            secs,
            thousands((stats.records as f64 / secs) as u64)
        );
        println!(
            "  requests {}, retried records {}, throttled {}{}",
            thousands(stats.requests),
            thousands(stats.retries),
            thousands(stats.throttles),
            if args.aggregate {
                ", KPL-aggregated"
            } else {
                ""
            }
        );
        if skipped > 0 {
            println!(
                "  skipped {} lines without a usable companyID",
                thousands(skipped)
            );
        }
    }
    Ok(())
}

/// Reads every line, keys it by its companyID, and hands it over in chunks. Returns the
/// number of lines skipped for want of a companyID.
fn read_records(
    inputs: &[Input],
    tx: &tokio::sync::mpsc::Sender<Vec<(String, Vec<u8>)>>,
    counters: &Counters,
    random_keys: Option<u64>,
) -> Result<u64> {
    let decoder = Decoder::new(DefaultKind::Infer);
    let mut random = random_keys.map(fastrand::Rng::with_seed);
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut skipped = 0u64;
    for input in inputs {
        let format = input.format();
        let result = LineReader::new(input.open()?, tenantflow_kinesis::writer::MAX_RECORD_BYTES)
            .read_all(|event| {
                let Line::Record(bytes) = event.line else {
                    skipped += 1;
                    return Ok(ControlFlow::Continue(()));
                };
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    return Ok(ControlFlow::Continue(()));
                }
                // A dead letter is re-driven: its record goes on the stream.
                let redriven;
                let (bytes, format, first_line) = if format == InputFormat::DeadLetters {
                    match Redriven::parse(bytes) {
                        Ok(letter) => {
                            let format = InputFormat::of_redriven(&letter);
                            redriven = letter.record;
                            (&*redriven, format, false)
                        }
                        Err(error) => {
                            tracing::warn!(
                                input = input.name(),
                                line = event.number,
                                %error,
                                "Skipping a line that cannot be re-driven."
                            );
                            skipped += 1;
                            return Ok(ControlFlow::Continue(()));
                        }
                    }
                } else {
                    (bytes, format, event.number == 1)
                };
                let key = match format {
                    InputFormat::Csv => decoder
                        .decode_csv(bytes, first_line)
                        .ok()
                        .flatten()
                        .map(|r| r.company_id().to_owned()),
                    _ => decoder
                        .decode_json(bytes)
                        .ok()
                        .map(|r| r.company_id().to_owned()),
                };
                let Some(key) = key else {
                    if skipped < 5 {
                        tracing::warn!(
                            input = input.name(),
                            line = event.number,
                            "Skipping a line without a usable companyID."
                        );
                    }
                    skipped += 1;
                    return Ok(ControlFlow::Continue(()));
                };
                let key = match random.as_mut() {
                    Some(rng) => format!("{:016x}", rng.u64(..)),
                    None => key,
                };
                chunk.push((key, bytes.to_vec()));
                counters.queued.fetch_add(1, Ordering::Relaxed);
                if chunk.len() == CHUNK {
                    tx.blocking_send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                        .map_err(|_| "the writer stopped")?;
                }
                Ok::<_, &'static str>(ControlFlow::Continue(()))
            });
        match result {
            Ok(_) => {}
            Err(ReadError::Io(e)) => {
                return Err(e).with_context(|| format!("reading {}", input.name()));
            }
            // The writer stopped: its own error is reported.
            Err(ReadError::Handler(_)) => return Ok(skipped),
        }
    }
    if !chunk.is_empty() && tx.blocking_send(chunk).is_err() {
        bail!("the writer stopped");
    }
    Ok(skipped)
}
