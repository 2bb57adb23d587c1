//! A keyed worker: owns its tenants' state and output files, turns batches into results.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, SyncSender};

use crossbeam_channel::Receiver;

use tenantflow_core::batch::Position;
use tenantflow_core::clock::now_ms;
use tenantflow_core::{Batch, DeadLetter, DeadLetterReason, JobEvent, Record, ResultRow};
use tenantflow_operators::score::Model;
use tenantflow_operators::tenant::{JobOutcome, ProfileOrigin, TenantTable, features};
use tenantflow_operators::window::Retention;
use tenantflow_remote::executor::Completion;
use tenantflow_remote::lookup::LookupAnswer;
use tenantflow_remote::score::{Prediction, ScoreRow, Scored};
use tenantflow_sinks::encoding::ProfileFragments;
use tenantflow_sinks::file::FileStats;

use crate::checkpoint::coordinator::{WorkerAck, WorkerCheckpoint};
use crate::checkpoint::manifest::CheckpointStore;
use crate::error::RunError;
use crate::in_flight::InFlight;
use crate::lookup::{Lookups, Resolution};
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::output_port::OutputPort;
use crate::scoring::{Scorings, Unscored};
use crate::stage::AsyncStage;
use crate::status::{TenantQuery, WorkerGauges};

/// What goes down a worker's channel.
pub(crate) enum WorkerMessage {
    /// Records to process.
    Batch(Batch),
    /// Checkpoint N's barrier: every record before it is processed.
    Barrier(u64),
}

/// A keyed worker: its select loop (batches and barriers, remote answers, the scoring
/// linger) over its tenant state, its async stages (lookups, remote scoring) and its
/// output port.
pub(crate) struct Worker<'a, O: OutputPort> {
    pub(crate) index: usize,
    pub(crate) model: &'a Model,
    pub(crate) sources: &'a [String],
    pub(crate) table: TenantTable<ProfileFragments>,
    /// Where results and dead letters go.
    pub(crate) output: O,
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
    /// The worker's gauges (tenants, open files, state size), set once per batch.
    pub(crate) gauges: Arc<WorkerGauges>,
    /// Questions about the worker's tenants, answered between batches.
    pub(crate) queries: Receiver<TenantQuery>,
}

/// A failed refresh is tried again after at most this long (the stale profile is used
/// meanwhile).
const REFRESH_RETRY_MS: i64 = 60_000;

/// What a worker leaves behind.
pub(crate) struct WorkerReport {
    pub(crate) files: FileStats,
    pub(crate) tenants: usize,
}

/// A worker's fresh tenant table.
pub(crate) fn new_table(retention: Retention) -> TenantTable<ProfileFragments> {
    TenantTable::new(retention)
}

impl<O: OutputPort> Worker<'_, O> {
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
        let lookup_answers = self.lookups.as_ref().map(AsyncStage::answers);
        let score_answers = self.scoring.as_ref().map(AsyncStage::answers);
        let no_lookup_answer = crossbeam_channel::never();
        let no_score_answer = crossbeam_channel::never();
        if let Some(in_flight) = self.resumed_in_flight.take() {
            self.reissue(in_flight, &mut local)?;
            self.metrics.publish(&mut local);
        }
        let mut queries = std::mem::replace(&mut self.queries, crossbeam_channel::never());
        loop {
            self.waiting
                .store(self.waiting_records(), Ordering::Release);
            let lookups_waiting = self
                .lookups
                .as_ref()
                .is_some_and(AsyncStage::expects_answers);
            let scores_in_flight = self
                .scoring
                .as_ref()
                .is_some_and(AsyncStage::expects_answers);
            let linger = self.scoring.as_ref().and_then(AsyncStage::deadline);
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
                    recv(queries) -> query => {
                        self.answer(query, &mut queries);
                        continue;
                    }
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
                            scoring.at_deadline();
                        }
                        continue;
                    }
                }
            } else {
                crossbeam_channel::select! {
                    recv(messages) -> message => message,
                    recv(queries) -> query => {
                        self.answer(query, &mut queries);
                        continue;
                    }
                }
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
            // Answers that came meanwhile first: taking one per turn of the loop, as the
            // select does, would leave records waiting behind answers already here for
            // many batches, and their results far out of event-time order.
            self.take_ready_answers(&mut local)?;
            for (record, position) in batch.iter() {
                self.process(&record, position, &mut local)?;
            }
            self.output.flush()?;
            self.metrics.publish(&mut local);
            self.publish_gauges();
            batch.clear();
            // The reader may have stopped, or have enough spare batches: then drop it.
            let _ = recycle.try_send(batch);
        }
        self.drain_lookups(&mut local)?;
        self.drain_scoring(&mut local)?;
        self.metrics.publish(&mut local);
        let (files, port) = self.output.close()?;
        let part = WorkerCheckpoint {
            state: self.table.snapshot(),
            tenants: self.table.len() as u64,
            files: port.files,
            dead_letters: port.dead_letters,
            pending: port.pending,
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

    /// Answers a question about the worker's tenants from its state as it is between
    /// two batches; once the admin side is gone, stops listening.
    fn answer(
        &self,
        query: Result<TenantQuery, crossbeam_channel::RecvError>,
        queries: &mut Receiver<TenantQuery>,
    ) {
        match query {
            Ok(query) => query.answer(&self.table),
            Err(_) => *queries = crossbeam_channel::never(),
        }
    }

    fn publish_gauges(&self) {
        self.gauges
            .tenants
            .store(self.table.len() as u64, Ordering::Relaxed);
        self.gauges
            .open_files
            .store(self.output.open_files() as u64, Ordering::Relaxed);
    }

    /// Checkpoint `n` at this worker: the output stream flushed, files made durable,
    /// tenant state snapshotted, and what waits for remote answers kept (not waited
    /// for).
    fn checkpoint(&mut self, n: u64) -> Result<WorkerCheckpoint, RunError> {
        let tails = self.checkpoints.checkpoint_folder(n).child("tails");
        let port = self.output.checkpoint(&tails)?;
        let results = std::mem::take(&mut self.results);
        let state = self.table.snapshot();
        self.gauges
            .state_bytes
            .store(state.len() as u64, Ordering::Relaxed);
        self.publish_gauges();
        Ok(WorkerCheckpoint {
            state,
            tenants: self.table.len() as u64,
            files: port.files,
            dead_letters: port.dead_letters,
            pending: port.pending,
            results,
            in_flight: self.in_flight(),
        })
    }

    /// Records waiting for remote answers.
    fn waiting_records(&self) -> usize {
        self.lookups.as_ref().map_or(0, AsyncStage::waiting)
            + self.scoring.as_ref().map_or(0, AsyncStage::waiting)
    }

    /// What waits for a remote answer, as a checkpoint keeps it.
    fn in_flight(&self) -> InFlight {
        let mut in_flight = InFlight::default();
        if let Some(lookups) = &self.lookups {
            lookups.snapshot(&mut in_flight);
        }
        if let Some(scoring) = &self.scoring {
            scoring.snapshot(&mut in_flight);
        }
        in_flight
    }

    /// Issues again what waited for a remote answer at the checkpoint this run resumed
    /// from: rows to score first (their events are in the restored state), then the
    /// records that waited for lookups (which are not), each in its order.
    fn reissue(
        &mut self,
        in_flight: InFlight,
        local: &mut MetricsSnapshot,
    ) -> Result<(), RunError> {
        let format = self.output.format();
        for row in in_flight.scoring {
            let profile = row.profile;
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
                raw: row.raw,
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
                    score: Some(score),
                    risk: self.model.is_risk(score),
                };
                let version = self
                    .output
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
        while self.scoring.as_ref().is_some_and(AsyncStage::is_full) {
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
        while self.lookups.as_ref().is_some_and(AsyncStage::is_full) {
            self.take_one_answer(local)?;
        }
        // Answers already here first, so that records wait no longer than their
        // lookups take: records held back longer come out far from their event time's
        // neighbours (many small result files).
        while let Some(answer) = self.lookups.as_ref().and_then(Lookups::try_answer) {
            self.resolve(answer, local)?;
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

    /// Takes every lookup and scoring answer already arrived, without waiting.
    fn take_ready_answers(&mut self, local: &mut MetricsSnapshot) -> Result<(), RunError> {
        if let Some(answers) = self.lookups.as_ref().map(AsyncStage::answers) {
            while let Ok(answer) = answers.try_recv() {
                self.resolve(answer, local)?;
            }
        }
        if let Some(answers) = self.scoring.as_ref().map(AsyncStage::answers) {
            while let Ok(answer) = answers.try_recv() {
                self.take_scores(answer, local)?;
            }
        }
        Ok(())
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
                        .filter(|_| self.output.model_version_field());
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
                            raw: row.raw.as_deref().map(Cow::Borrowed),
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
        self.output.flush()
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
        self.output.result(&result, &row.fragments)?;
        if let Some(tenant) = self.table.get_mut(&row.company_id) {
            tenant
                .activity
                .record_score(prediction.score, prediction.risk);
        }
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
        lookups.answered();
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
                    let format = self.output.format();
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
                let format = self.output.format();
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
                    raw: job.raw.as_deref().map(Into::into),
                };
                self.score_remotely(unscored, features, local)
            }
            JobOutcome::Joined(joined) => {
                joined
                    .tenant
                    .activity
                    .record_score(Some(joined.churn_score), joined.risk_of_churn);
                let row = ResultRow {
                    company_id: &job.company_id,
                    profile: &joined.tenant.profile,
                    job30: joined.job30,
                    job90: joined.job90,
                    risk_of_churn: joined.risk_of_churn,
                    churn_score: Some(joined.churn_score),
                    user_id: &job.user_id,
                    nb_jobs: job.nb_jobs,
                    creation_date,
                    model_version: self
                        .output
                        .model_version_field()
                        .then(|| self.model.version()),
                };
                self.output.result(&row, &joined.tenant.ext)?;
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
        // The record as it was read; the canonical form of the event for a source that
        // keeps none (the generator), so that the dead letter can be re-driven.
        let canonical;
        let record = match &job.raw {
            Some(raw) => raw.as_ref(),
            None => {
                canonical = serde_json::json!({
                    "type": "job",
                    "companyID": job.company_id,
                    "userID": job.user_id,
                    "nbJobs": job.nb_jobs,
                    "creationDate": job.creation_date,
                })
                .to_string();
                &canonical
            }
        };
        let source = self
            .sources
            .get(position.source as usize)
            .map_or("?", String::as_str);
        self.output.dead_letter(&DeadLetter {
            reason,
            error,
            source,
            line: (position.line > 0).then_some(position.line),
            shard: None,
            sequence: None,
            record,
            record_lossy: false,
            record_bytes: None,
            record_truncated_from: None,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The worker with a fake output port and fake remote services: what it writes, and
    //! what its checkpoints hold while answers are outstanding.
    #![allow(clippy::unwrap_used)]

    use std::num::{NonZeroU32, NonZeroUsize};
    use std::sync::Mutex;
    use std::time::Duration;

    use tenantflow_core::record::{Company, ProfileFields};
    use tenantflow_remote::call::{BACKOFF_BASE, BACKOFF_MAX, CallConfig, CallError};
    use tenantflow_remote::keyed::Emission;
    use tenantflow_remote::score::{ScoreBatch, ScorerTarget};
    use tenantflow_sinks::dead_letter::DeadLetterState;
    use tenantflow_sinks::store::MemoryStore;
    use tenantflow_sinks::upload::Location;
    use tokio::sync::Semaphore;
    use tower::util::BoxCloneSyncService;

    use super::*;
    use crate::lookup::{LookupConfig, LookupService};
    use crate::output_port::PortCheckpoint;
    use crate::scoring::{ScoringConfig, ScoringService};

    /// What the fake port was given: results as `tenant user job30 job90 risk`, dead
    /// letters as `reason tenant`.
    #[derive(Default)]
    struct Written {
        results: Vec<String>,
        dead_letters: Vec<String>,
        /// Told of each result as it is written, if set.
        notify: Option<crossbeam_channel::Sender<String>>,
    }

    struct FakeOutput(Arc<Mutex<Written>>);

    impl OutputPort for FakeOutput {
        fn format(&self) -> tenantflow_sinks::encoding::Format {
            tenantflow_sinks::encoding::Format::Ndjson
        }

        fn model_version_field(&self) -> bool {
            false
        }

        fn result(&mut self, row: &ResultRow<'_>, _: &ProfileFragments) -> Result<(), RunError> {
            let result = format!(
                "{} {} {} {} {}",
                row.company_id, row.user_id, row.job30, row.job90, row.risk_of_churn
            );
            let mut written = self.0.lock().unwrap();
            if let Some(notify) = &written.notify {
                notify.send(result.clone()).unwrap();
            }
            written.results.push(result);
            Ok(())
        }

        fn dead_letter(&mut self, letter: &DeadLetter<'_>) -> Result<(), RunError> {
            let record: serde_json::Value = serde_json::from_str(letter.record).unwrap();
            self.0.lock().unwrap().dead_letters.push(format!(
                "{} {}",
                letter.reason,
                record["companyID"].as_str().unwrap()
            ));
            Ok(())
        }

        fn flush(&mut self) -> Result<(), RunError> {
            Ok(())
        }

        fn checkpoint(&mut self, _: &Location) -> Result<PortCheckpoint, RunError> {
            Ok(PortCheckpoint::default())
        }

        fn close(&mut self) -> Result<(FileStats, PortCheckpoint), RunError> {
            Ok((
                FileStats::default(),
                PortCheckpoint {
                    dead_letters: DeadLetterState::default(),
                    ..PortCheckpoint::default()
                },
            ))
        }
    }

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_767_225_600_000;

    fn company(id: &str) -> Record<'static> {
        Record::Company(Company {
            company_id: Cow::Owned(id.into()),
            profile: ProfileFields {
                industry: Cow::Borrowed("retail"),
                revenu: 1_000,
                employees: 10,
                job30: 2,
                job90: 5,
                monthly_fee: 100.0,
                total_fee: 900.0,
            },
        })
    }

    fn job(id: &str, user: &str, day: i64) -> Record<'static> {
        Record::Job(JobEvent {
            company_id: Cow::Owned(id.into()),
            user_id: Cow::Owned(user.into()),
            nb_jobs: 1,
            creation_date: Some(T0 + day * DAY),
            raw: None,
        })
    }

    fn batch(records: &[Record<'static>]) -> WorkerMessage {
        let mut batch = Batch::default();
        for (i, record) in records.iter().enumerate() {
            let time = match record {
                Record::Job(job) => job.creation_date.unwrap_or(T0),
                Record::Company(_) => T0,
            };
            let position = Position {
                source: 0,
                line: i as u64 + 1,
            };
            batch.push(record, time, position);
        }
        WorkerMessage::Batch(batch)
    }

    fn call_config() -> CallConfig {
        CallConfig {
            max_in_flight: NonZeroUsize::new(4).unwrap(),
            timeout: Duration::from_secs(30),
            max_attempts: NonZeroU32::new(1).unwrap(),
            backoff_base: BACKOFF_BASE,
            backoff_max: BACKOFF_MAX,
        }
    }

    /// A scorer that answers each batch once the test gives it a permit: a churn risk
    /// for every row.
    fn held_scorer(runtime: &tokio::runtime::Runtime, gate: Arc<Semaphore>) -> Scorings {
        let service = tower::service_fn(move |batch: ScoreBatch| {
            let gate = Arc::clone(&gate);
            async move {
                gate.acquire().await.unwrap().forget();
                Ok::<_, CallError>(Scored {
                    predictions: vec![
                        Prediction {
                            score: Some(0.75),
                            risk: true
                        };
                        batch.len()
                    ],
                    model_version: None,
                })
            }
        });
        let config = ScoringConfig {
            target: ScorerTarget::parse("http://127.0.0.1:9/invocations").unwrap(),
            endpoint_url: None,
            contract: None,
            auth: Default::default(),
            call: call_config(),
            batch: NonZeroUsize::new(2).unwrap(),
            linger: Duration::from_millis(1),
            emission: Emission::Unordered,
        };
        ScoringService::with_service(config, BoxCloneSyncService::new(service))
            .for_worker(runtime.handle().clone())
    }

    /// A TenantManager that knows every tenant (the profile of `company`) and answers
    /// once the test gives it a permit.
    fn held_tenant_manager(runtime: &tokio::runtime::Runtime, gate: Arc<Semaphore>) -> Lookups {
        let service = tower::service_fn(move |id: Box<str>| {
            let gate = Arc::clone(&gate);
            async move {
                gate.acquire().await.unwrap().forget();
                let Record::Company(c) = company(&id) else {
                    unreachable!()
                };
                Ok::<_, CallError>(LookupAnswer::Found(c.profile.to_profile()))
            }
        });
        lookups_with(
            runtime,
            BoxCloneSyncService::new(service),
            Duration::from_secs(3600),
        )
    }

    /// A TenantManager whose `job30` is how many times it was asked (counted in
    /// `asked`), at once.
    fn counting_tenant_manager(
        runtime: &tokio::runtime::Runtime,
        asked: Arc<AtomicUsize>,
        ttl: Duration,
    ) -> Lookups {
        let service = tower::service_fn(move |id: Box<str>| {
            let n = asked.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                let Record::Company(c) = company(&id) else {
                    unreachable!()
                };
                let mut profile = c.profile.to_profile();
                profile.job30 = n as i64;
                Ok::<_, CallError>(LookupAnswer::Found(profile))
            }
        });
        lookups_with(runtime, BoxCloneSyncService::new(service), ttl)
    }

    fn lookups_with(
        runtime: &tokio::runtime::Runtime,
        service: tenantflow_remote::call::CallService<Box<str>, LookupAnswer>,
        ttl: Duration,
    ) -> Lookups {
        let service = LookupService {
            config: LookupConfig {
                url: "http://127.0.0.1:9".into(),
                auth: Default::default(),
                call: call_config(),
                ttl,
                emission: Emission::Unordered,
                unknown_ttl: Duration::from_secs(60),
            },
            service,
            stats: Arc::default(),
        };
        service.for_worker(runtime.handle().clone())
    }

    /// A worker over a fake port, with the given state and stages.
    struct Run<'a> {
        model: &'a Model,
        table: TenantTable<ProfileFragments>,
        lookups: Option<Lookups>,
        scoring: Option<Scorings>,
        resumed: Option<InFlight>,
    }

    impl Run<'_> {
        /// Sends `messages`, calls `between`, closes the channel; returns the acks
        /// left after `between` and what the worker wrote.
        fn go(
            self,
            messages: Vec<WorkerMessage>,
            between: impl FnOnce(&std::sync::mpsc::Receiver<WorkerAck>, &Mutex<Written>),
        ) -> (Vec<WorkerAck>, Arc<Mutex<Written>>) {
            self.go_with(Written::default(), messages, |_, acks, written| {
                between(acks, written)
            })
        }

        /// As [`Run::go`], starting from `written`; `between` may send more messages.
        fn go_with(
            self,
            written: Written,
            messages: Vec<WorkerMessage>,
            between: impl FnOnce(
                &crossbeam_channel::Sender<WorkerMessage>,
                &std::sync::mpsc::Receiver<WorkerAck>,
                &Mutex<Written>,
            ),
        ) -> (Vec<WorkerAck>, Arc<Mutex<Written>>) {
            let written = Arc::new(Mutex::new(written));
            let metrics = Metrics::default();
            let checkpoints = CheckpointStore {
                location: Location::root(Arc::new(MemoryStore::new())),
            };
            let (acks_tx, acks) = std::sync::mpsc::channel();
            let waiting = AtomicUsize::new(0);
            let sources = ["in.ndjson".to_owned()];
            let (tx, rx) = crossbeam_channel::unbounded();
            let (recycle, _recycled) = std::sync::mpsc::sync_channel(16);
            let worker = Worker {
                index: 0,
                model: self.model,
                sources: &sources,
                table: self.table,
                output: FakeOutput(Arc::clone(&written)),
                metrics: &metrics,
                checkpoints: &checkpoints,
                acks: acks_tx,
                results: 0,
                lookups: self.lookups,
                scoring: self.scoring,
                refresh_warnings: tenantflow_core::warn_limit::WarnLimiter::new(10_000),
                resumed_in_flight: self.resumed,
                waiting: &waiting,
                gauges: Arc::default(),
                queries: crossbeam_channel::never(),
            };
            let mut got = Vec::new();
            std::thread::scope(|scope| {
                let handle = scope.spawn(move || worker.run(rx, recycle));
                for message in messages {
                    tx.send(message).unwrap();
                }
                between(&tx, &acks, &written);
                drop(tx);
                assert!(handle.join().unwrap().is_ok());
            });
            got.extend(acks.try_iter());
            (got, written)
        }
    }

    /// A tenant table restored from a checkpoint's state.
    fn restored_table(state: &[u8], model: &Model) -> TenantTable<ProfileFragments> {
        let mut table = new_table(Retention::default());
        table
            .restore(state, model, |id, p| {
                tenantflow_sinks::encoding::Format::Ndjson.profile_fragments(id, p)
            })
            .unwrap();
        table
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn results_come_out_in_order_with_the_embedded_model() {
        let model = Model::builtin();
        let run = Run {
            model: &model,
            table: new_table(Retention::default()),
            lookups: None,
            scoring: None,
            resumed: None,
        };
        let messages = vec![batch(&[
            company("c1"),
            job("c1", "u1", 0),
            job("c2", "u2", 0),
            job("c1", "u3", 1),
        ])];
        let (acks, written) = run.go(messages, |_, _| {});
        let written = written.lock().unwrap();
        assert_eq!(written.results.len(), 2);
        assert!(
            written.results[0].starts_with("c1 u1 3 6 "),
            "{:?}",
            written.results
        );
        assert!(
            written.results[1].starts_with("c1 u3 4 7 "),
            "{:?}",
            written.results
        );
        assert_eq!(written.dead_letters, ["unknown_company c2"]);
        // The final part only: no barrier came.
        assert_eq!(acks.len(), 1);
        let part = acks[0].part.as_ref().unwrap();
        assert_eq!(part.tenants, 1);
        assert!(part.in_flight.is_empty());
    }

    #[test]
    fn a_barrier_does_not_wait_for_scores_and_a_resumed_worker_writes_them() {
        let model = Model::builtin();
        let runtime = runtime();
        let gate = Arc::new(Semaphore::new(0));
        let records = [
            company("c1"),
            company("c2"),
            job("c1", "u1", 0),
            job("c2", "u2", 0),
            job("c1", "u3", 1),
        ];
        // Undisturbed: the scorer answers at once.
        let open = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
        let (_, undisturbed) = Run {
            model: &model,
            table: new_table(Retention::default()),
            lookups: None,
            scoring: Some(held_scorer(&runtime, open)),
            resumed: None,
        }
        .go(vec![batch(&records)], |_, _| {});
        let want = undisturbed.lock().unwrap().results.clone();
        assert_eq!(want.len(), 3);
        assert!(want.iter().all(|r| r.ends_with("true")), "{want:?}");

        // Held: the barrier's part comes while every row waits for its score.
        let mut checkpoint = None;
        let (acks, written) = Run {
            model: &model,
            table: new_table(Retention::default()),
            lookups: None,
            scoring: Some(held_scorer(&runtime, Arc::clone(&gate))),
            resumed: None,
        }
        .go(
            vec![batch(&records), WorkerMessage::Barrier(1)],
            |acks, written| {
                let ack = acks.recv().unwrap();
                assert!(
                    written.lock().unwrap().results.is_empty(),
                    "no score has come"
                );
                checkpoint = ack.part;
                gate.add_permits(100);
            },
        );
        assert_eq!(acks.len(), 1, "then the final part");
        assert_eq!(written.lock().unwrap().results, want);
        let checkpoint = checkpoint.unwrap();
        let waiting: Vec<_> = checkpoint
            .in_flight
            .scoring
            .iter()
            .map(|r| (&*r.company_id, &*r.user_id, r.job30))
            .collect();
        assert_eq!(waiting, [("c1", "u1", 3), ("c2", "u2", 3), ("c1", "u3", 4)]);

        // Resumed from that checkpoint (its state already counts the three events):
        // the rows are scored and written first, exactly as undisturbed.
        let table = restored_table(&checkpoint.state, &model);
        let open = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
        let (_, resumed) = Run {
            model: &model,
            table,
            lookups: None,
            scoring: Some(held_scorer(&runtime, open)),
            resumed: Some(checkpoint.in_flight.clone()),
        }
        .go(Vec::new(), |_, _| {});
        assert_eq!(resumed.lock().unwrap().results, want);
        // Resumed with the embedded model instead: the same rows, scored in process.
        let (_, embedded) = Run {
            model: &model,
            table: new_table(Retention::default()),
            lookups: None,
            scoring: None,
            resumed: Some(checkpoint.in_flight),
        }
        .go(Vec::new(), |_, _| {});
        let embedded = embedded.lock().unwrap().results.clone();
        let tenants: Vec<_> = embedded.iter().map(|r| &r[..6]).collect();
        assert_eq!(tenants, ["c1 u1 ", "c2 u2 ", "c1 u3 "]);
    }

    #[test]
    fn a_barrier_does_not_wait_for_lookups_and_a_resumed_worker_looks_up_again() {
        let model = Model::builtin();
        let runtime = runtime();
        let gate = Arc::new(Semaphore::new(0));
        let records = [job("c7", "u1", 0), company("c8"), job("c7", "u2", 1)];
        let mut checkpoint = None;
        let (_, written) = Run {
            model: &model,
            table: new_table(Retention::default()),
            lookups: Some(held_tenant_manager(&runtime, Arc::clone(&gate))),
            scoring: None,
            resumed: None,
        }
        .go(
            vec![batch(&records), WorkerMessage::Barrier(1)],
            |acks, written| {
                let ack = acks.recv().unwrap();
                assert!(
                    written.lock().unwrap().results.is_empty(),
                    "c7 waits for its profile"
                );
                checkpoint = ack.part;
                gate.add_permits(100);
            },
        );
        let want = written.lock().unwrap().results.clone();
        assert_eq!(want.len(), 2, "{want:?}");
        assert!(want[0].starts_with("c7 u1 3 6 "), "{want:?}");
        let checkpoint = checkpoint.unwrap();
        // c8's company record did not wait; c7's job events did, not yet applied.
        assert_eq!(checkpoint.tenants, 1);
        assert_eq!(checkpoint.in_flight.lookups.len(), 2);
        let table = restored_table(&checkpoint.state, &model);
        let open = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
        let (_, resumed) = Run {
            model: &model,
            table,
            lookups: Some(held_tenant_manager(&runtime, open)),
            scoring: None,
            resumed: Some(checkpoint.in_flight),
        }
        .go(Vec::new(), |_, _| {});
        assert_eq!(resumed.lock().unwrap().results, want);
    }

    /// Lookups past the in-flight bound wait in the queue, not the worker; a tenant's
    /// records that come while its lookup is out use its answer; one that comes after
    /// the answer was used asks again once the profile is past its TTL.
    #[test]
    fn a_profile_past_its_ttl_is_fetched_again_for_a_later_event() {
        let model = Model::builtin();
        let runtime = runtime();
        for (ttl, asks, job30s) in [
            (Duration::ZERO, 2, ["2", "4"]),
            (Duration::from_secs(3600), 1, ["2", "3"]),
        ] {
            let asked = Arc::new(AtomicUsize::new(0));
            let (notify, results) = crossbeam_channel::unbounded();
            let written = Written {
                notify: Some(notify),
                ..Written::default()
            };
            let (_, written) = Run {
                model: &model,
                table: new_table(Retention::default()),
                lookups: Some(counting_tenant_manager(&runtime, Arc::clone(&asked), ttl)),
                scoring: None,
                resumed: None,
            }
            .go_with(written, vec![batch(&[job("c1", "u1", 0)])], |tx, _, _| {
                // The second event comes after the first one's result.
                results.recv().unwrap();
                tx.send(batch(&[job("c1", "u2", 1)])).unwrap();
                results.recv().unwrap();
            });
            assert_eq!(asked.load(Ordering::SeqCst), asks, "ttl {ttl:?}");
            let job30: Vec<String> = written
                .lock()
                .unwrap()
                .results
                .iter()
                .map(|r| r.split(' ').nth(2).unwrap().to_owned())
                .collect();
            assert_eq!(job30, job30s, "ttl {ttl:?}");
        }
        // Many tenants at once with one request in flight: the worker does not wait
        // for each answer; every event gets its tenant's profile.
        let asked = Arc::new(AtomicUsize::new(0));
        let mut lookups =
            counting_tenant_manager(&runtime, Arc::clone(&asked), Duration::from_secs(3600));
        lookups.set_max_in_flight_for_test(1);
        let records: Vec<Record<'static>> = (0..50)
            .map(|i| job(&format!("t{}", i % 10), &format!("u{i}"), 0))
            .collect();
        let (_, written) = Run {
            model: &model,
            table: new_table(Retention::default()),
            lookups: Some(lookups),
            scoring: None,
            resumed: None,
        }
        .go(vec![batch(&records)], |_, _| {});
        assert_eq!(written.lock().unwrap().results.len(), 50);
        assert_eq!(asked.load(Ordering::SeqCst), 10, "one request per tenant");
    }
}
