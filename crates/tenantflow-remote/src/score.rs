//! Remote churn scoring: a batch of rows (the feature contract of
//! [`tenantflow_operators::contract`]) in, one prediction per row out, from
//!
//! - an HTTP endpoint of SageMaker's container contract (`…/invocations`): the whole
//!   batch as one `text/csv` request, `{"predictions":[{"score","predicted_label"}…]}`
//!   back;
//! - the original API Gateway route (`…/assessChurn`): one company per request (the
//!   route takes no more), `{"churn"}` back, with `score` optional;
//! - a SageMaker endpoint through the AWS SDK's `InvokeEndpoint` (SigV4, region and
//!   credentials from the standard chain), with the same body and answer as
//!   `/invocations`. The SDK's own retries are off: retries are the call stack's.
//!
//! Those are the defaults; a [`ScoreContract`] says otherwise (the row's columns, a
//! one-hot industry, the answer's shape), and an [`Auth`] signs HTTP requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_sagemakerruntime::config::http::HttpResponse;
use aws_sdk_sagemakerruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use tenantflow_operators::score::Features;
use tower::Service;

use crate::auth::Auth;
use crate::call::CallError;
use crate::contract::ScoreContract;
use crate::lookup::{UrlError, http_client, read_body, redact, transport};

/// How a scorer is named in errors.
const SCORER: &str = "scorer";

/// One row to score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The tenant's industry.
    pub industry: tenantflow_core::Industry,
    /// The numeric features.
    pub features: Features,
}

/// The rows of one request (shared, so that a retry does not copy them).
pub type ScoreBatch = Arc<[ScoreRow]>;

/// The answer for one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// The churn probability; `None` when the scorer answered a label alone.
    pub score: Option<f64>,
    /// Whether the scorer flags a churn risk.
    pub risk: bool,
}

/// The answer to a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// One prediction per row, in row order.
    pub predictions: Vec<Prediction>,
    /// The model's version, when the scorer names it (`model_version`).
    pub model_version: Option<Arc<str>>,
}

/// Where the job's churn scores come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScorerTarget {
    /// The model in the job's process.
    Embedded,
    /// `POST {url}` with `text/csv` rows (a URL ending in `/invocations`).
    Invocations(String),
    /// `POST {url}` with one company as JSON (a URL ending in `/assessChurn`).
    AssessChurn(String),
    /// SageMaker runtime `InvokeEndpoint` of this endpoint name.
    SageMaker(String),
}

impl ScorerTarget {
    /// Reads `embedded`, `sagemaker://ENDPOINT_NAME`, `http(s)://…/invocations` or
    /// `http(s)://…/assessChurn`.
    ///
    /// # Errors
    /// Anything else, with what is accepted.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let refuse = |message: &str| UrlError::new(SCORER, &redact(text), message);
        if text == "embedded" {
            return Ok(Self::Embedded);
        }
        if let Some(name) = text.strip_prefix("sagemaker://") {
            let valid = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            return if valid {
                Ok(Self::SageMaker(name.to_owned()))
            } else {
                Err(refuse(
                    "a SageMaker endpoint name is 1 to 63 letters, digits and hyphens",
                ))
            };
        }
        let url = reqwest::Url::parse(text).map_err(|e| refuse(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(
                "expected embedded, sagemaker://NAME, or an http(s) URL ending in /invocations or /assessChurn",
            ));
        }
        let path = url.path().trim_end_matches('/');
        if path.ends_with("/invocations") {
            Ok(Self::Invocations(text.to_owned()))
        } else if path.ends_with("/assessChurn") {
            Ok(Self::AssessChurn(text.to_owned()))
        } else {
            Err(refuse(
                "an http(s) scorer URL ends in /invocations or /assessChurn",
            ))
        }
    }

    /// How rows go to this target and come back when no contract file says otherwise:
    /// one company as JSON to `/assessChurn`, the feature contract's CSV to the others.
    pub fn default_contract(&self) -> ScoreContract {
        match self {
            Self::AssessChurn(_) => ScoreContract::assess_churn(),
            _ => ScoreContract::tenantflow(),
        }
    }

    /// The target as it may be shown (without credentials).
    pub fn shown(&self) -> String {
        match self {
            Self::Embedded => "embedded".into(),
            Self::Invocations(url) | Self::AssessChurn(url) => redact(url),
            Self::SageMaker(name) => format!("sagemaker://{name}"),
        }
    }
}

/// A scorer over plain HTTP: `/invocations` or `/assessChurn`.
#[derive(Debug, Clone)]
pub struct HttpScorer {
    http: reqwest::Client,
    url: reqwest::Url,
    /// `url` without credentials, for messages.
    shown: String,
    contract: Arc<ScoreContract>,
    auth: Auth,
}

impl HttpScorer {
    /// A client of `target` that sends rows and reads answers as `contract` says, and
    /// authenticates as `auth` says.
    ///
    /// # Errors
    /// A target that is not an HTTP one.
    pub fn new(
        target: &ScorerTarget,
        contract: ScoreContract,
        auth: Auth,
    ) -> Result<Self, UrlError> {
        let text = match target {
            ScorerTarget::Invocations(url) | ScorerTarget::AssessChurn(url) => url,
            other => {
                return Err(UrlError::new(SCORER, &other.shown(), "not an HTTP scorer"));
            }
        };
        let url = reqwest::Url::parse(text)
            .map_err(|e| UrlError::new(SCORER, &redact(text), &e.to_string()))?;
        Ok(Self {
            http: http_client()
                .map_err(|e| UrlError::new(SCORER, &redact(text), &e.to_string()))?,
            shown: redact(text),
            url,
            contract: Arc::new(contract),
            auth,
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, CallError>> + Send>>;

impl Service<ScoreBatch> for HttpScorer {
    type Response = Scored;
    type Error = CallError;
    type Future = BoxFuture<Scored>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, rows: ScoreBatch) -> Self::Future {
        let shown = self.shown.clone();
        let http = self.http.clone();
        let url = self.url.clone();
        let contract = Arc::clone(&self.contract);
        let auth = self.auth.clone();
        Box::pin(async move {
            let invalid = |message: String| CallError::Invalid {
                url: shown.clone(),
                message,
            };
            let (content_type, body) = contract.body(&rows).map_err(invalid)?;
            let mut request = http
                .post(url)
                .header("accept", "application/json")
                .header("content-type", content_type)
                .body(body)
                .build()
                .map_err(|e| transport(&shown, e))?;
            auth.apply(&mut request, &shown).await?;
            let response = http
                .execute(request)
                .await
                .map_err(|e| transport(&shown, e))?;
            let body = read_body(response, &shown).await?;
            contract.read_answer(&body, rows.len()).map_err(invalid)
        })
    }
}

/// A SageMaker endpoint, called through the AWS SDK.
#[derive(Debug, Clone)]
pub struct SageMakerScorer {
    client: aws_sdk_sagemakerruntime::Client,
    endpoint: String,
    shown: String,
    contract: Arc<ScoreContract>,
}

impl SageMakerScorer {
    /// A client of endpoint `name`: region and credentials from the standard chain,
    /// the service's URL from `endpoint_url` if given (else the chain's, which reads
    /// `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` and `AWS_ENDPOINT_URL`).
    ///
    /// # Errors
    /// No region, or no credentials, in the chain (every request would fail): said at
    /// start, not as a dead letter per event.
    pub async fn connect(
        name: &str,
        endpoint_url: Option<&str>,
        contract: ScoreContract,
    ) -> Result<Self, UrlError> {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        if shared.region().is_none() {
            return Err(UrlError::new(
                SCORER,
                &format!("sagemaker://{name}"),
                "no AWS region: set AWS_REGION, or a region in the AWS profile",
            ));
        }
        use aws_sdk_sagemakerruntime::config::ProvideCredentials;
        let credentials = match shared.credentials_provider() {
            Some(provider) => provider
                .provide_credentials()
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            None => Err("no credentials provider".to_owned()),
        };
        if let Err(why) = credentials {
            return Err(UrlError::new(
                SCORER,
                &format!("sagemaker://{name}"),
                &format!(
                    "no AWS credentials ({why}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or a role"
                ),
            ));
        }
        let mut config = aws_sdk_sagemakerruntime::config::Builder::from(&shared);
        if let Some(url) = endpoint_url {
            config = config.endpoint_url(url);
        }
        Ok(Self::with_config(config.build(), name, contract))
    }

    /// A client of endpoint `name` with `config`, its retries turned off (the call
    /// stack retries).
    pub fn with_config(
        config: aws_sdk_sagemakerruntime::Config,
        name: &str,
        contract: ScoreContract,
    ) -> Self {
        let config = config
            .to_builder()
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Self {
            client: aws_sdk_sagemakerruntime::Client::from_conf(config),
            endpoint: name.to_owned(),
            shown: format!("sagemaker://{name}"),
            contract: Arc::new(contract),
        }
    }
}

impl Service<ScoreBatch> for SageMakerScorer {
    type Response = Scored;
    type Error = CallError;
    type Future = BoxFuture<Scored>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, rows: ScoreBatch) -> Self::Future {
        let shown = self.shown.clone();
        let contract = Arc::clone(&self.contract);
        let invalid = |shown: &str, message: String| CallError::Invalid {
            url: shown.into(),
            message,
        };
        let request = contract.body(&rows).map(|(content_type, body)| {
            self.client
                .invoke_endpoint()
                .endpoint_name(&self.endpoint)
                .content_type(content_type)
                .accept("application/json")
                .body(body.into_bytes().into())
        });
        Box::pin(async move {
            let output = request
                .map_err(|message| invalid(&shown, message))?
                .send()
                .await
                .map_err(|e| sagemaker_error(&shown, e))?;
            let body = output.body().map(|b| b.as_ref()).unwrap_or_default();
            contract
                .read_answer(body, rows.len())
                .map_err(|message| invalid(&shown, message))
        })
    }
}

/// The SDK's error as a [`CallError`], so that the retry rules are the same as over
/// HTTP. A `ModelError` (the model's container failed) counts as the status the
/// container answered.
fn sagemaker_error(shown: &str, error: SdkError<InvokeEndpointError, HttpResponse>) -> CallError {
    match error {
        SdkError::DispatchFailure(e) => {
            let message = match e.as_connector_error() {
                Some(connector) => DisplayErrorContext(connector).to_string(),
                None => format!("{e:?}"),
            };
            if e.is_io() || e.as_connector_error().is_some_and(|c| c.is_io()) {
                CallError::Connect {
                    url: shown.into(),
                    message,
                }
            } else {
                CallError::Transport {
                    url: shown.into(),
                    message,
                }
            }
        }
        // The SDK's own timeouts are not set (the stack times each attempt); should one
        // strike, it is a transport failure, retried.
        SdkError::TimeoutError(e) => CallError::Transport {
            url: shown.into(),
            message: format!("timed out: {e:?}"),
        },
        SdkError::ServiceError(service) => {
            let raw = service.raw();
            let mut status = raw.status().as_u16();
            let retry_after = raw
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if let InvokeEndpointError::ModelError(model) = service.err()
                && let Some(original) = model.original_status_code()
            {
                status = u16::try_from(original).unwrap_or(status);
            }
            CallError::Status {
                url: shown.into(),
                status,
                retry_after,
                body: DisplayErrorContext(service.err()).to_string(),
            }
        }
        SdkError::ResponseError(e) => CallError::Transport {
            url: shown.into(),
            message: format!("{e:?}"),
        },
        other => CallError::Invalid {
            url: shown.into(),
            message: DisplayErrorContext(&other).to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_are_read_and_bad_ones_refused_without_credentials() {
        assert_eq!(
            ScorerTarget::parse("embedded").unwrap(),
            ScorerTarget::Embedded
        );
        assert_eq!(
            ScorerTarget::parse("sagemaker://churn-v2").unwrap(),
            ScorerTarget::SageMaker("churn-v2".into())
        );
        assert!(matches!(
            ScorerTarget::parse("http://127.0.0.1:8081/invocations").unwrap(),
            ScorerTarget::Invocations(_)
        ));
        let assess = ScorerTarget::parse("https://x.example/prod/assessChurn").unwrap();
        assert_eq!(
            assess.default_contract().max_batch().map(|n| n.get()),
            Some(1)
        );
        for bad in [
            "sagemaker://",
            "sagemaker://a_b",
            "http://h/score",
            "ftp://h/invocations",
        ] {
            assert!(ScorerTarget::parse(bad).is_err(), "{bad}");
        }
        let e = ScorerTarget::parse("http://u:secret@h/nope").unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    /// A SageMaker client of `url` with test credentials.
    fn sagemaker(url: &str) -> SageMakerScorer {
        use aws_sdk_sagemakerruntime::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_sagemakerruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDTEST",
                "secret-key",
                None,
                None,
                "test",
            ))
            .endpoint_url(url)
            .build();
        SageMakerScorer::with_config(config, "churn", ScoreContract::tenantflow())
    }

    fn one_row() -> ScoreBatch {
        Arc::from(vec![ScoreRow {
            industry: "retail".into(),
            features: Features {
                revenu: 1.0,
                employees: 2.0,
                job30: 3.0,
                job90: 4.0,
                monthly_fee: 5.0,
                total_fee: 6.0,
            },
        }])
    }

    #[tokio::test]
    async fn sagemaker_errors_follow_the_http_retry_rules() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tower::ServiceExt;
        // Nothing listens: a connect error, retried.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let error = sagemaker(&format!("http://127.0.0.1:{port}"))
            .oneshot(one_row())
            .await
            .unwrap_err();
        assert!(error.is_retryable(), "{error:?}");
        assert!(!error.to_string().contains("secret-key"), "{error}");

        // A server answering 503, then 400: the first retried, the second not.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for status in ["503 Service Unavailable", "400 Bad Request"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 65536];
                let _ = socket.read(&mut request).await.unwrap();
                let body = r#"{"message":"no"}"#;
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let client = sagemaker(&url);
        let error = client.clone().oneshot(one_row()).await.unwrap_err();
        assert!(
            matches!(error, CallError::Status { status: 503, .. }) && error.is_retryable(),
            "{error:?}"
        );
        let error = client.oneshot(one_row()).await.unwrap_err();
        assert!(
            matches!(error, CallError::Status { status: 400, .. }) && !error.is_retryable(),
            "{error:?}"
        );
    }
}
