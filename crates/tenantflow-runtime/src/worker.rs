//! A keyed worker: owns its tenants' state and output files, turns batches into results.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, SyncSender};

use crossbeam_channel::Receiver;

use tenantflow_core::batch::Position;
use tenantflow_core::clock::now_ms;
use tenantflow_core::{
    Batch, CompanyProfile, DeadLetter, DeadLetterReason, JobEvent, Record, ResultRow,
};
use tenantflow_operators::score::Model;
use tenantflow_operators::tenant::{JobOutcome, ProfileOrigin, TenantTable, features};
use tenantflow_operators::window::Retention;
use tenantflow_remote::executor::Completion;
use tenantflow_remote::lookup::LookupAnswer;
use tenantflow_remote::score::{Prediction, ScoreRow, Scored};
use tenantflow_sinks::dead_letter::DeadLetterSink;
use tenantflow_sinks::encoding::{Format, ProfileFragments};
use tenantflow_sinks::file::{FileStats, PartitionedFileSink};

use crate::checkpoint::coordinator::{WorkerAck, WorkerCheckpoint};
use crate::checkpoint::manifest::CheckpointStore;
use crate::error::RunError;
use crate::in_flight::InFlight;
use crate::lookup::{Lookups, Resolution};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::scoring::{Scorings, Unscored};
use crate::stream_sink::StreamSink;

/// What goes down a worker's channel.
pub(crate) enum WorkerMessage {
    /// Records to process.
    Batch(Batch),
    /// Checkpoint N's barrier: every record before it is processed.
    Barrier(u64),
}

pub(crate) struct Worker<'a> {
    pub(crate) index: usize,
    pub(crate) model: &'a Model,
    pub(crate) sources: &'a [String],
    pub(crate) table: TenantTable<ProfileFragments>,
    pub(crate) sink: PartitionedFileSink,
    pub(crate) dead_letters: DeadLetterSink,
    pub(crate) stream_sink: Option<StreamSink>,
    pub(crate) metrics: &'a Metrics,
    pub(crate) checkpoints: &'a CheckpointStore,
    pub(crate) acks: Sender<WorkerAck>,
    /// Results written since this process started.
    pub(crate) results: u64,
    /// Lookups of tenants without a profile, if the job has a TenantManager.
    pub(crate) lookups: Option<Lookups>,
    /// Remote scoring, if the job's scorer is not the embedded model.
    pub(crate) scoring: Option<Scorings>,
    /// Failed refreshes are warned of once per 10 s, not once per tenant.
    pub(crate) refresh_warnings: tenantflow_core::warn_limit::WarnLimiter,
    /// The waiting work of the checkpoint this run resumes from: issued again before
    /// anything new is read.
    pub(crate) resumed_in_flight: Option<InFlight>,
    /// Records waiting for remote answers, published for the coordinator (which goes
    /// on taking checkpoints after the sources end while any wait).
    pub(crate) waiting: &'a AtomicUsize,
}

/// A failed refresh is tried again after at most this long (the stale profile is used
/// meanwhile).
const REFRESH_RETRY_MS: i64 = 60_000;

/// What a worker leaves behind.
pub(crate) struct WorkerReport {
    pub(crate) files: FileStats,
    pub(crate) tenants: usize,
}

impl Worker<'_> {
    pub(crate) fn new_table(retention: Retention) -> TenantTable<ProfileFragments> {
        TenantTable::new(retention)
    }

    /// Processes batches and barriers until every source has closed the channel, then
    /// finishes its files and hands its final part to the coordinator. On an error the
    /// coordinator hears of it, and the error is returned.
    pub(crate) fn run(
        mut self,
        messages: Receiver<WorkerMessage>,
        recycle: SyncSender<Batch>,
    ) -> Result<WorkerReport, RunError> {
        let acks = self.acks.clone();
        let worker = self.index;
        let result = self.run_inner(messages, recycle);
        if result.is_err() {
            let _ = acks.send(WorkerAck { worker, part: None });
        }
        result
    }

    fn run_inner(
        &mut self,
        messages: Receiver<WorkerMessage>,
        recycle: SyncSender<Batch>,
    ) -> Result<WorkerReport, RunError> {
        let mut local = MetricsSnapshot::default();
        let lookup_answers = self.lookups.as_ref().map(Lookups::completions);
        let score_answers = self.scoring.as_ref().map(Scorings::completions);
        let no_lookup_answer = crossbeam_channel::never();
        let no_score_answer = crossbeam_channel::never();
        if let Some(in_flight) = self.resumed_in_flight.take() {
            self.reissue(in_flight, &mut local)?;
            self.metrics.publish(&mut local);
        }
        loop {
            self.waiting
                .store(self.waiting_records(), Ordering::Release);
            let lookups_waiting = self.lookups.as_ref().is_some_and(|l| !l.queue.is_empty());
            let scores_in_flight = self.scoring.as_ref().is_some_and(|s| s.in_flight() > 0);
            let linger = self.scoring.as_ref().and_then(Scorings::deadline);
            let message = if lookups_waiting || scores_in_flight || linger.is_some() {
                let lookup_answers = match &lookup_answers {
                    Some(rx) if lookups_waiting => rx,
                    _ => &no_lookup_answer,
                };
                let score_answers = match &score_answers {
                    Some(rx) if scores_in_flight => rx,
                    _ => &no_score_answer,
                };
                let linger = linger.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
                crossbeam_channel::select! {
                    recv(messages) -> message => message,
                    recv(lookup_answers) -> answer => {
                        if let Ok(answer) = answer {
                            self.resolve(answer, &mut local)?;
                            self.metrics.publish(&mut local);
                        }
                        continue;
                    }
                    recv(score_answers) -> answer => {
                        if let Ok(answer) = answer {
                            self.take_scores(answer, &mut local)?;
                            self.metrics.publish(&mut local);
                        }
                        continue;
                    }
                    recv(linger) -> _ => {
                        if let Some(scoring) = &mut self.scoring {
                            scoring.flush();
                        }
                        continue;
                    }
                }
            } else {
                messages.recv()
            };
            let Ok(message) = message else {
                break;
            };
            let mut batch = match message {
                WorkerMessage::Batch(batch) => {
                    // Busy until this batch is processed.
                    self.waiting.store(usize::MAX, Ordering::Release);
                    batch
                }
                WorkerMessage::Barrier(n) => {
                    // What waits for a remote answer goes into the checkpoint: the
                    // barrier does not wait for it.
                    self.metrics.publish(&mut local);
                    let part = self.checkpoint(n)?;
                    let _ = self.acks.send(WorkerAck {
                        worker: self.index,
                        part: Some(part),
                    });
                    continue;
                }
            };
            for (record, position) in batch.iter() {
                self.process(&record, position, &mut local)?;
            }
            if let Some(sink) = &mut self.stream_sink {
                sink.flush()?;
            }
            self.metrics.publish(&mut local);
            batch.clear();
            // The reader may have stopped, or have enough spare batches: then drop it.
            let _ = recycle.try_send(batch);
        }
        self.drain_lookups(&mut local)?;
        self.drain_scoring(&mut local)?;
        self.metrics.publish(&mut local);
        if let Some(mut stream) = self.stream_sink.take() {
            stream.sync()?;
        }
        let (files, mut pending) = self.sink.close()?;
        let (dead_letters, more) = self.dead_letters.close()?;
        pending.extend(more);
        let part = WorkerCheckpoint {
            state: self.table.snapshot(),
            tenants: self.table.len() as u64,
            files: tenantflow_sinks::file::SinkState {
                seq: self.sink.seq(),
                open: Vec::new(),
            },
            dead_letters,
            pending,
            results: std::mem::take(&mut self.results),
            in_flight: InFlight::default(),
        };
        let _ = self.acks.send(WorkerAck {
            worker: self.index,
            part: Some(part),
        });
        tracing::debug!(
            worker = self.index,
            tenants = self.table.len(),
            files = files.files,
            "Worker done."
        );
        Ok(WorkerReport {
            files,
            tenants: self.table.len(),
        })
    }

    /// Checkpoint `n` at this worker: the output stream flushed, files made durable,
    /// tenant state snapshotted.
    fn checkpoint(&mut self, n: u64) -> Result<WorkerCheckpoint, RunError> {
        if let Some(stream) = &mut self.stream_sink {
            stream.sync()?;
        }
        let tails = self.checkpoints.checkpoint_folder(n).child("tails");
        let now = now_ms();
        let (files, mut pending) = self.sink.checkpoint(&tails, now)?;
        let (dead_letters, more) = self.dead_letters.checkpoint(&tails, now)?;
        pending.extend(more);
        let results = std::mem::take(&mut self.results);
        Ok(WorkerCheckpoint {
            state: self.table.snapshot(),
            tenants: self.table.len() as u64,
            files,
            dead_letters,
            pending,
            results,
            in_flight: self.in_flight(),
        })
    }

    /// Records waiting for remote answers.
    fn waiting_records(&self) -> usize {
        self.lookups.as_ref().map_or(0, |l| l.queue.queued())
            + self.scoring.as_ref().map_or(0, Scorings::queued)
    }

    /// What waits for a remote answer, as a checkpoint keeps it.
    fn in_flight(&self) -> InFlight {
        InFlight {
            scoring: self
                .scoring
                .as_ref()
                .map(Scorings::snapshot)
                .unwrap_or_default(),
            lookups: self
                .lookups
                .as_ref()
                .map(Lookups::snapshot)
                .unwrap_or_default(),
        }
    }

    /// Issues again what waited for a remote answer at the checkpoint this run resumed
    /// from: rows to score first (their events are in the restored state), then the
    /// records that waited for lookups (which are not), each in its order.
    fn reissue(
        &mut self,
        in_flight: InFlight,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        let format = self.sink.format();
        for row in in_flight.scoring {
            let profile = CompanyProfile::from(row.profile);
            let features = features(&profile, row.job30, row.job90);
            let fragments = format.profile_fragments(&row.company_id, &profile);
            let unscored = Unscored {
                company_id: row.company_id,
                fragments,
                job30: row.job30,
                job90: row.job90,
                user_id: row.user_id,
                nb_jobs: row.nb_jobs,
                creation_date: row.creation_date,
                position: row.at.into(),
                profile,
            };
            if self.scoring.is_some() {
                self.score_remotely(unscored, features, local)?;
            } else {
                // Resumed with the embedded model where a remote scorer was.
                let industry_weight = self.model.industry_weight(&unscored.profile.industry);
                let score =
                    self.model
                        .score(&features, &unscored.profile.industry, industry_weight);
                let prediction = Prediction {
                    score,
                    risk: self.model.is_risk(score),
                };
                let version = self
                    .sink
                    .model_version_field()
                    .then(|| self.model.version());
                self.write_scored(&unscored, prediction, version, local)?;
            }
        }
        for waiting in in_flight.lookups {
            let (record, position) = waiting.into_record();
            self.process(&record, position, local)?;
        }
        Ok(())
    }

    /// Adds a row to the remote scorer's open batch, waiting for answers while the
    /// scoring is full.
    fn score_remotely(
        &mut self,
        unscored: Unscored,
        features: tenantflow_operators::score::Features,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        let row = ScoreRow {
            industry: unscored.profile.industry.clone(),
            features,
        };
        while self.scoring.as_ref().is_some_and(Scorings::is_full) {
            self.take_one_score(local)?;
        }
        if let Some(scoring) = &mut self.scoring {
            scoring.push(unscored, row);
        }
        Ok(())
    }

    fn process(
        &mut self,
        record: &Record<'_>,
        position: Position,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        if self.lookups.is_some() {
            return self.process_with_lookups(record, position, local);
        }
        self.apply(record, position, None, local)
    }

    /// With lookups: queues the record if it must wait for its tenant's answer (starting
    /// the lookup if none is in flight), or processes it now.
    fn process_with_lookups(
        &mut self,
        record: &Record<'_>,
        position: Position,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        while self.lookups.as_ref().is_some_and(Lookups::is_full) {
            self.take_one_answer(local)?;
        }
        let Some(lookups) = &mut self.lookups else {
            return self.apply(record, position, None, local);
        };
        let key = record.company_id();
        let must_wait = lookups.queue.must_wait(key);
        let (needs_profile, now) = match record {
            Record::Job(_) => match self.table.origin(key) {
                None => (true, now_ms()),
                Some(ProfileOrigin::Input) => (false, 0),
                Some(ProfileOrigin::Fetched { refresh_at_ms }) => {
                    let now = now_ms();
                    (refresh_at_ms <= now, now)
                }
            },
            Record::Company(_) => (false, 0),
        };
        // Answered "unknown" moments ago: not asked again until the unknown TTL.
        let unknown = needs_profile && lookups.known_unknown(key, now);
        if unknown && !must_wait {
            return self.apply(record, position, Some(Resolution::Unknown), local);
        }
        if needs_profile && !unknown && lookups.queue.needs_request(key) {
            lookups.start(key);
        } else if !must_wait {
            return self.apply(record, position, None, local);
        }
        lookups.push(record, position);
        Ok(())
    }

    /// Waits for one lookup's answer and lets through what it unblocks.
    fn take_one_answer(&mut self, local: &mut MetricsSnapshot) -> Result<(), RunError> {
        let Some(lookups) = &self.lookups else {
            return Ok(());
        };
        match lookups.completions().recv() {
            Ok(answer) => self.resolve(answer, local),
            // The executor holds a sender: not reached while it lives.
            Err(_) => Err(RunError::Aborted),
        }
    }

    /// Takes answers until nothing waits.
    fn drain_lookups(&mut self, local: &mut MetricsSnapshot) -> Result<(), RunError> {
        while self.lookups.as_ref().is_some_and(|l| !l.queue.is_empty()) {
            self.take_one_answer(local)?;
        }
        Ok(())
    }

    /// Sends the open scoring batch and takes answers until no row waits for a score.
    fn drain_scoring(&mut self, local: &mut MetricsSnapshot) -> Result<(), RunError> {
        let Some(scoring) = &mut self.scoring else {
            return Ok(());
        };
        scoring.flush();
        while self.scoring.as_ref().is_some_and(|s| !s.is_idle()) {
            self.take_one_score(local)?;
        }
        Ok(())
    }

    /// Waits for one scoring answer and lets out what it unblocks (sending the open
    /// batch first if nothing is in flight, so that an answer can come).
    fn take_one_score(&mut self, local: &mut MetricsSnapshot) -> Result<(), RunError> {
        let Some(scoring) = &mut self.scoring else {
            return Ok(());
        };
        if scoring.in_flight() == 0 {
            scoring.flush();
            if scoring.in_flight() == 0 {
                return Ok(());
            }
        }
        match scoring.completions().recv() {
            Ok(answer) => self.take_scores(answer, local),
            // The executor holds a sender: not reached while it lives.
            Err(_) => Err(RunError::Aborted),
        }
    }

    /// Keeps a scoring answer, then writes the results (or dead letters) of every batch
    /// that may now come out.
    fn take_scores(
        &mut self,
        answer: Completion<Scored, u64>,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        let Some(scoring) = &mut self.scoring else {
            return Ok(());
        };
        scoring.complete(answer);
        while let Some((rows, answer)) = self.scoring.as_mut().and_then(Scorings::pop_ready) {
            match answer {
                Ok(scored) => {
                    // A scorer that does not name its model is named by its address.
                    let version = scored
                        .model_version
                        .clone()
                        .or_else(|| self.scoring.as_ref().map(|s| Arc::clone(&s.target_name)));
                    let version = version
                        .as_deref()
                        .filter(|_| self.sink.model_version_field());
                    for (row, prediction) in rows.iter().zip(&scored.predictions) {
                        self.write_scored(row, *prediction, version, local)?;
                    }
                }
                Err(error) => {
                    let error = error.to_string();
                    for row in &rows {
                        let job = JobEvent {
                            company_id: Cow::Borrowed(&row.company_id),
                            user_id: Cow::Borrowed(&row.user_id),
                            nb_jobs: row.nb_jobs,
                            creation_date: Some(row.creation_date),
                        };
                        let message = format!("scoring company `{}`: {error}", row.company_id);
                        self.dead_letter(
                            DeadLetterReason::ScoringFailed,
                            &message,
                            &job,
                            row.position,
                            local,
                        )?;
                    }
                }
            }
        }
        if let Some(stream) = &mut self.stream_sink {
            stream.flush()?;
        }
        Ok(())
    }

    /// Writes a result whose score came from the remote scorer.
    fn write_scored(
        &mut self,
        row: &Unscored,
        prediction: Prediction,
        model_version: Option<&str>,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        let result = ResultRow {
            company_id: &row.company_id,
            profile: &row.profile,
            job30: row.job30,
            job90: row.job90,
            risk_of_churn: prediction.risk,
            churn_score: prediction.score,
            user_id: &row.user_id,
            nb_jobs: row.nb_jobs,
            creation_date: row.creation_date,
            model_version,
        };
        write_result(
            &mut self.sink,
            self.stream_sink.as_mut(),
            &result,
            &row.fragments,
        )?;
        self.count_result(prediction.risk, local);
        Ok(())
    }

    fn count_result(&mut self, risk_of_churn: bool, local: &mut MetricsSnapshot) {
        local.results += 1;
        self.results += 1;
        local.churn_flags += u64::from(risk_of_churn);
    }

    /// Applies a lookup's answer to state, then processes the records it unblocks.
    fn resolve(
        &mut self,
        answer: Completion<LookupAnswer>,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        let Some(lookups) = &mut self.lookups else {
            return Ok(());
        };
        local.lookups += 1;
        let key = &*answer.key;
        let now = now_ms();
        // A profile from a companies input is newer than any answer: it wins.
        let origin = self.table.origin(key);
        let from_input = origin == Some(ProfileOrigin::Input);
        let fetched = matches!(origin, Some(ProfileOrigin::Fetched { .. }));
        let resolution = match answer.result {
            Ok(LookupAnswer::Found(profile)) => {
                if !from_input {
                    let format = self.sink.format();
                    let refresh_at = now.saturating_add(lookups.ttl_ms);
                    self.table
                        .set_profile(key, profile, refresh_at, self.model, |profile| {
                            format.profile_fragments(key, profile)
                        });
                    local.tenants_fetched += 1;
                }
                lookups.forget_unknown(key);
                Resolution::Profile
            }
            Ok(LookupAnswer::Unknown) => {
                if fetched {
                    // Deleted from the TenantManager since it was fetched.
                    self.table.remove(key);
                }
                if !from_input {
                    lookups.remember_unknown(key, now);
                }
                if from_input {
                    Resolution::Profile
                } else {
                    Resolution::Unknown
                }
            }
            Err(error) => {
                if fetched {
                    // A failed refresh: the profile in state stays, for a while.
                    let retry = lookups.ttl_ms.clamp(1, REFRESH_RETRY_MS);
                    self.table.postpone_refresh(key, now.saturating_add(retry));
                    if let Some(held_back) = self.refresh_warnings.allow(now) {
                        tracing::warn!(tenant = key, %error, more_since_last = held_back, "Refreshing a tenant failed; its profile is kept (one such warning per 10 s).");
                    }
                    Resolution::Profile
                } else if from_input {
                    // A companies record came while the lookup was out: it is the profile.
                    Resolution::Profile
                } else {
                    Resolution::Failed(error.to_string().into())
                }
            }
        };
        lookups.queue.complete(key, resolution);
        while let Some((_, waiting, resolution)) =
            self.lookups.as_mut().and_then(|l| l.queue.pop_ready())
        {
            self.apply(&waiting.record, waiting.position, resolution, local)?;
        }
        Ok(())
    }

    /// Processes a record now: a company updates state, a job event is joined (or,
    /// without a profile, becomes a dead letter whose reason `lookup` gives).
    fn apply(
        &mut self,
        record: &Record<'_>,
        position: Position,
        lookup: Option<Resolution>,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        let job = match record {
            Record::Company(company) => {
                if let Some(lookups) = &mut self.lookups {
                    lookups.forget_unknown(&company.company_id);
                }
                let format = self.sink.format();
                let id = &company.company_id;
                self.table.upsert(company, self.model, |profile| {
                    format.profile_fragments(id, profile)
                });
                return Ok(());
            }
            Record::Job(job) => job,
        };
        let creation_date = job.creation_date.unwrap_or_default();
        match self
            .table
            .process_job(&job.company_id, job.nb_jobs, creation_date, self.model)
        {
            JobOutcome::Joined(joined) if self.scoring.is_some() => {
                let profile = &joined.tenant.profile;
                let features = joined.features();
                let unscored = Unscored {
                    company_id: job.company_id.as_ref().into(),
                    profile: profile.clone(),
                    fragments: joined.tenant.ext.clone(),
                    job30: joined.job30,
                    job90: joined.job90,
                    user_id: job.user_id.as_ref().into(),
                    nb_jobs: job.nb_jobs,
                    creation_date,
                    position,
                };
                self.score_remotely(unscored, features, local)
            }
            JobOutcome::Joined(joined) => {
                let row = ResultRow {
                    company_id: &job.company_id,
                    profile: &joined.tenant.profile,
                    job30: joined.job30,
                    job90: joined.job90,
                    risk_of_churn: joined.risk_of_churn,
                    churn_score: joined.churn_score,
                    user_id: &job.user_id,
                    nb_jobs: job.nb_jobs,
                    creation_date,
                    model_version: self
                        .sink
                        .model_version_field()
                        .then(|| self.model.version()),
                };
                write_result(
                    &mut self.sink,
                    self.stream_sink.as_mut(),
                    &row,
                    &joined.tenant.ext,
                )?;
                let risk = joined.risk_of_churn;
                self.count_result(risk, local);
                Ok(())
            }
            JobOutcome::UnknownCompany => {
                let (reason, error) = match lookup {
                    Some(Resolution::Failed(error)) => (
                        DeadLetterReason::LookupFailed,
                        format!("looking up company `{}`: {error}", job.company_id),
                    ),
                    Some(Resolution::Unknown) => (
                        DeadLetterReason::UnknownCompany,
                        format!(
                            "the TenantManager does not know company `{}`",
                            job.company_id
                        ),
                    ),
                    _ => (
                        DeadLetterReason::UnknownCompany,
                        format!("no profile for company `{}`", job.company_id),
                    ),
                };
                self.dead_letter(reason, &error, job, position, local)
            }
            JobOutcome::TooLate(e) => self.dead_letter(
                DeadLetterReason::TooLate,
                &e.to_string(),
                job,
                position,
                local,
            ),
        }
    }

    fn dead_letter(
        &mut self,
        reason: DeadLetterReason,
        error: &str,
        job: &JobEvent<'_>,
        position: Position,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        local.dead_letters[reason.index()] += 1;
        // The canonical form of the event, so that the dead letter can be replayed.
        let record = serde_json::json!({
            "type": "job",
            "companyID": job.company_id,
            "userID": job.user_id,
            "nbJobs": job.nb_jobs,
            "creationDate": job.creation_date,
        })
        .to_string();
        let source = self
            .sources
            .get(position.source as usize)
            .map_or("?", String::as_str);
        self.dead_letters
            .write(&DeadLetter {
                reason,
                error,
                source,
                line: (position.line > 0).then_some(position.line),
                shard: None,
                sequence: None,
                record: &record,
                record_lossy: false,
                record_truncated_from: None,
            })
            .map_err(RunError::Sink)
    }
}

/// Writes a result to the files and, if the job has one, the output stream.
fn write_result(
    sink: &mut PartitionedFileSink,
    stream_sink: Option<&mut StreamSink>,
    row: &ResultRow<'_>,
    fragments: &ProfileFragments,
) -> Result<(), RunError> {
    sink.write(row, fragments)?;
    if let Some(stream) = stream_sink {
        // The stream gets JSON whatever the file format; reuse the tenant's pre-encoded
        // profile when the files are NDJSON too.
        let mut json = Vec::with_capacity(256);
        if sink.format() == Format::Ndjson {
            Format::Ndjson.encode_row(&mut json, row, fragments);
        } else {
            let fragments = Format::Ndjson.profile_fragments(row.company_id, row.profile);
            Format::Ndjson.encode_row(&mut json, row, &fragments);
        }
        json.pop(); // the newline: one JSON document per Kinesis record
        stream.push(row.company_id, json);
    }
    Ok(())
}
