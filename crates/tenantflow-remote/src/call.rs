//! One call's life: retried with exponential back-off and equal jitter when the failure
//! is worth retrying (connect errors, resets, timeouts, 5xx, 429), never more than
//! `max_in_flight` attempts at once over every clone of the stack, each attempt within
//! its own timeout.
//!
//! The stack, outermost first: retry → error mapping → concurrency limit → timeout →
//! the service. A request waiting for a slot is not timed, and a request sleeping
//! between attempts holds no slot.
//!
//! Equal jitter (a pause between half its cap and its cap) rather than full jitter
//! (between nothing and its cap): retries still spread out, and the attempts of a call
//! span at least half the sum of the caps, so how long an outage a call rides out is a
//! bound, not a chance. [`retry_span`] gives that bound for a number of attempts.

use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::Semaphore;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::retry::{Policy, RetryLayer};
use tower::timeout::TimeoutLayer;
use tower::timeout::error::Elapsed;
use tower::util::{BoxCloneSyncService, MapErrLayer};
use tower::{Service, ServiceBuilder};

/// How calls to one remote service are made.
#[derive(Debug, Clone, PartialEq)]
pub struct CallConfig {
    /// Most attempts in flight at once, over the whole job.
    pub max_in_flight: NonZeroUsize,
    /// Time allowed to one attempt.
    pub timeout: Duration,
    /// Attempts before giving up (1: no retry).
    pub max_attempts: NonZeroU32,
    /// The first back-off; each retry doubles it, up to `backoff_max`.
    pub backoff_base: Duration,
    /// The longest back-off.
    pub backoff_max: Duration,
}

/// The first back-off of the remote calls of `tenantflow run`.
pub const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Their longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The shortest and longest time that the pauses between `attempts` attempts add up to,
/// with back-off from `base` doubling up to `max` (attempts' own time not counted): a
/// service unreachable for less than the first fails no call; one unreachable for
/// longer than the second (plus the attempts' timeouts) fails every call made meanwhile.
pub fn retry_span(attempts: u32, base: Duration, max: Duration) -> (Duration, Duration) {
    let caps = (0..attempts.saturating_sub(1))
        .map(|i| base.saturating_mul(1 << i.min(20)).min(max))
        .fold(Duration::ZERO, Duration::saturating_add);
    (caps / 2, caps)
}

/// Why a call failed.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallError {
    /// No connection could be made.
    #[error("connecting to {url}: {message}")]
    Connect {
        /// The request's URL (without credentials).
        url: String,
        /// What the client said.
        message: String,
    },
    /// The connection broke before a whole answer came back (reset, truncated body).
    #[error("{url}: {message}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What the client said.
        message: String,
    },
    /// The attempt took longer than its timeout.
    #[error("{url}: no answer within {timeout:?}")]
    Timeout {
        /// The request's URL (empty when the timeout struck before it was known).
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The service answered with an error status.
    #[error("{url} answered {status}{}", body_suffix(.body))]
    Status {
        /// The request's URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What the service asked for with `Retry-After`.
        retry_after: Option<Duration>,
        /// The start of the answer's body.
        body: String,
    },
    /// An answer that cannot be used (bad JSON, another tenant): not retried.
    #[error("{url}: unusable answer: {message}")]
    Invalid {
        /// The request's URL.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// Every attempt failed; the last failure.
    #[error("gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        last: Box<CallError>,
    },
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl CallError {
    /// True for failures another attempt may not meet: connect errors, broken
    /// connections, timeouts, 5xx and 429. Other 4xx and unusable answers are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::Connect { .. } | CallError::Transport { .. } | CallError::Timeout { .. } => {
                true
            }
            CallError::Status { status, .. } => *status == 429 || *status >= 500,
            CallError::Invalid { .. } | CallError::Exhausted { .. } => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            CallError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Counters of one remote service's calls, shared by every clone of its stack.
#[derive(Debug, Default)]
pub struct CallStats {
    /// Attempts started.
    pub attempts: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Calls that failed for good.
    pub failures: AtomicU64,
    /// Attempts under way now.
    pub in_flight: AtomicU64,
    /// How long attempts took (cut short by the timeout or not).
    pub latency: LatencyHistogram,
}

impl CallStats {
    /// `(attempts, retries, failures)`.
    pub fn read(&self) -> (u64, u64, u64) {
        (
            self.attempts.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }
}

/// The upper bounds, in seconds, of [`LatencyHistogram`]'s buckets (the last,
/// unbounded one is implied).
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A histogram of durations over [`LATENCY_BUCKETS`]: one atomic add per bucket hit,
/// for the metrics' exporter to read.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations per bucket, not cumulative; the last is above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    /// Counts one duration.
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = LATENCY_BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, buckets as (upper bound, observations in it))`, the
    /// last bucket's bound being infinity; counts per bucket, not cumulative (the
    /// exporter accumulates them).
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.buckets)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (sum, count, buckets)
    }
}

/// A service wrapped in the stack: what the executor calls.
pub type CallService<Req, Res> = BoxCloneSyncService<Req, Res, CallError>;

/// Wraps `service` in the retry, limit and timeout layers of `config`. Every clone of
/// the result shares one bound on requests in flight.
pub fn stack<S, Req, Res>(
    service: S,
    config: &CallConfig,
    stats: Arc<CallStats>,
) -> CallService<Req, Res>
where
    S: Service<Req, Response = Res, Error = CallError> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    Req: Clone + Send + Sync + 'static,
    Res: Send + 'static,
{
    let timeout = config.timeout;
    let counted = Counted {
        inner: service,
        stats: Arc::clone(&stats),
    };
    let service = ServiceBuilder::new()
        .layer(RetryLayer::new(Backoff {
            attempts: 0,
            max_attempts: config.max_attempts.get(),
            base: config.backoff_base,
            max: config.backoff_max,
            stats,
        }))
        .layer(MapErrLayer::new(move |e: tower::BoxError| {
            into_call_error(e, timeout)
        }))
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(Arc::new(
            Semaphore::new(config.max_in_flight.get()),
        )))
        .layer(TimeoutLayer::new(timeout))
        .service(counted);
    BoxCloneSyncService::new(service)
}

fn into_call_error(error: tower::BoxError, timeout: Duration) -> CallError {
    match error.downcast::<CallError>() {
        Ok(e) => *e,
        Err(error) if error.is::<Elapsed>() => CallError::Timeout {
            url: String::new(),
            timeout,
        },
        Err(error) => CallError::Transport {
            url: String::new(),
            message: error.to_string(),
        },
    }
}

/// Counts attempts, the attempts under way, and how long each took.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    stats: Arc<CallStats>,
}

impl<S, Req> Service<Req> for Counted<S>
where
    S: Service<Req>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        let attempt = Attempt {
            stats: Arc::clone(&self.stats),
            started: tokio::time::Instant::now(),
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            drop(attempt);
            result
        })
    }
}

/// An attempt under way: when it ends (answered, failed, or dropped by the timeout)
/// it leaves the in-flight gauge and its duration goes into the histogram.
struct Attempt {
    stats: Arc<CallStats>,
    /// Tokio's clock, so that tests with a paused clock measure it.
    started: tokio::time::Instant,
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.stats.latency.observe(self.started.elapsed());
    }
}

/// The retry policy: exponential back-off with equal jitter, at least what a
/// `Retry-After` asked for; at the last attempt the error becomes
/// [`CallError::Exhausted`].
#[derive(Clone)]
struct Backoff {
    attempts: u32,
    max_attempts: u32,
    base: Duration,
    max: Duration,
    stats: Arc<CallStats>,
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl Backoff {
    /// The pause before attempt `self.attempts + 1`.
    fn delay(&self, retry_after: Option<Duration>) -> Duration {
        let exponent = self.attempts.saturating_sub(1).min(20);
        let cap = self.base.saturating_mul(1 << exponent).min(self.max);
        let half = cap / 2;
        let jittered =
            half + Duration::from_micros(fastrand::u64(0..=(cap - half).as_micros() as u64));
        retry_after.map_or(jittered, |asked| asked.min(self.max).max(jittered))
    }
}

impl<Req: Clone, Res> Policy<Req, Res, CallError> for Backoff {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Req,
        result: &mut Result<Res, CallError>,
    ) -> Option<Self::Future> {
        let Err(error) = result else {
            return None;
        };
        self.attempts += 1;
        if !error.is_retryable() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self.attempts >= self.max_attempts {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
            let last = std::mem::replace(
                error,
                CallError::Invalid {
                    url: String::new(),
                    message: String::new(),
                },
            );
            *error = CallError::Exhausted {
                attempts: self.attempts,
                last: Box::new(last),
            };
            return None;
        }
        self.stats.retries.fetch_add(1, Ordering::Relaxed);
        Some(tokio::time::sleep(self.delay(error.retry_after())))
    }

    fn clone_request(&mut self, request: &Req) -> Option<Req> {
        Some(request.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use tower::ServiceExt;

    /// Answers from a script, one per attempt, and records how many attempts overlap.
    #[derive(Clone)]
    struct Scripted {
        script: Arc<Mutex<Vec<Result<u32, CallError>>>>,
        in_flight: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        pause: Duration,
    }

    impl Service<u32> for Scripted {
        type Response = u32;
        type Error = CallError;
        type Future = Pin<Box<dyn Future<Output = Result<u32, CallError>> + Send>>;

        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), CallError>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: u32) -> Self::Future {
            let this = self.clone();
            Box::pin(async move {
                let now = this.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                this.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(this.pause).await;
                this.in_flight.fetch_sub(1, Ordering::SeqCst);
                this.script.lock().unwrap().pop().unwrap_or(Ok(0))
            })
        }
    }

    fn status(status: u16) -> CallError {
        CallError::Status {
            url: "http://x/".into(),
            status,
            retry_after: None,
            body: String::new(),
        }
    }

    fn scripted(mut answers: Vec<Result<u32, CallError>>, pause: Duration) -> Scripted {
        answers.reverse();
        Scripted {
            script: Arc::new(Mutex::new(answers)),
            in_flight: Arc::default(),
            most: Arc::default(),
            pause,
        }
    }

    fn config(max_attempts: u32) -> CallConfig {
        CallConfig {
            max_in_flight: NonZeroUsize::new(2).unwrap(),
            timeout: Duration::from_secs(1),
            max_attempts: NonZeroU32::new(max_attempts).unwrap(),
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(100),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_what_is_retryable_until_it_succeeds() {
        let service = scripted(
            vec![Err(status(503)), Err(status(429)), Ok(7)],
            Duration::ZERO,
        );
        let stats = Arc::new(CallStats::default());
        let stack = stack(service, &config(5), Arc::clone(&stats));
        assert_eq!(stack.oneshot(1).await, Ok(7));
        assert_eq!(stats.read(), (3, 2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_error_is_not_retried() {
        let service = scripted(vec![Err(status(400)), Ok(7)], Duration::ZERO);
        let stats = Arc::new(CallStats::default());
        let stack = stack(service, &config(5), Arc::clone(&stats));
        assert_eq!(stack.oneshot(1).await, Err(status(400)));
        assert_eq!(stats.read(), (1, 0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_last_attempt_and_says_why() {
        let service = scripted(vec![Err(status(500)); 3], Duration::ZERO);
        let stack = stack(service, &config(3), Arc::default());
        let error = stack.oneshot(1).await.unwrap_err();
        assert_eq!(
            error,
            CallError::Exhausted {
                attempts: 3,
                last: Box::new(status(500))
            }
        );
        assert_eq!(
            error.to_string(),
            "gave up after 3 attempts: http://x/ answered 500"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_attempt_times_out_and_is_retried() {
        let service = scripted(vec![Ok(1), Ok(2)], Duration::from_secs(2));
        let stats = Arc::new(CallStats::default());
        let stack = stack(service, &config(2), Arc::clone(&stats));
        let error = stack.oneshot(1).await.unwrap_err();
        let CallError::Exhausted { attempts: 2, last } = error else {
            panic!("{error:?}")
        };
        assert!(matches!(*last, CallError::Timeout { .. }), "{last:?}");
        // Both attempts were cut at the 1 s timeout: none left in flight, both in the
        // histogram's bucket up to 1 s, none below.
        assert_eq!(stats.in_flight.load(Ordering::Relaxed), 0);
        let (sum, count, buckets) = stats.latency.read();
        assert_eq!(count, 2);
        assert!((sum - 2.0).abs() < 0.01, "{sum}");
        assert_eq!(buckets.iter().find(|(b, _)| *b == 0.5), Some(&(0.5, 0)));
        assert_eq!(buckets.iter().find(|(b, _)| *b == 1.0), Some(&(1.0, 2)));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 0)));
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_the_bound_on_requests_in_flight() {
        let service = scripted(Vec::new(), Duration::from_millis(10));
        let most = Arc::clone(&service.most);
        let stack = stack(service, &config(1), Arc::default());
        let calls: Vec<_> = (0..10)
            .map(|i| tokio::spawn(stack.clone().oneshot(i)))
            .collect();
        for call in calls {
            call.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_default_attempts_ride_out_eight_seconds_of_outage() {
        let (shortest, longest) = retry_span(10, BACKOFF_BASE, BACKOFF_MAX);
        assert_eq!(
            (shortest, longest),
            (Duration::from_millis(8_175), Duration::from_millis(16_350))
        );
        assert_eq!(
            retry_span(1, BACKOFF_BASE, BACKOFF_MAX),
            (Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn back_off_grows_and_keeps_within_its_bounds() {
        let mut policy = Backoff {
            attempts: 0,
            max_attempts: 10,
            base: Duration::from_millis(10),
            max: Duration::from_millis(100),
            stats: Arc::default(),
        };
        for attempts in 1..10 {
            policy.attempts = attempts;
            let cap = Duration::from_millis(10 << (attempts - 1).min(10)).min(policy.max);
            for _ in 0..100 {
                let delay = policy.delay(None);
                assert!(
                    cap / 2 <= delay && delay <= cap,
                    "{delay:?} against {cap:?}"
                );
            }
            let asked = Duration::from_millis(60);
            assert!(policy.delay(Some(asked)) >= asked);
        }
    }
}
