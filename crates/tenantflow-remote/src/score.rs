//! Remote churn scoring: a batch of rows (the feature contract of
//! [`tenantflow_operators::contract`]) in, one prediction per row out, from
//!
//! - an HTTP endpoint of SageMaker's container contract (`…/invocations`): the whole
//!   batch as one `text/csv` request, `{"predictions":[{"score","predicted_label"}…]}`
//!   back;
//! - the original API Gateway route (`…/assessChurn`): one company per request (the
//!   route takes no more), `{"churn","score"}` back;
//! - a SageMaker endpoint through the AWS SDK's `InvokeEndpoint` (SigV4, region and
//!   credentials from the standard chain), with the same body and answer as
//!   `/invocations`. The SDK's own retries are off: retries are the call stack's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_sagemakerruntime::config::http::HttpResponse;
use aws_sdk_sagemakerruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_sagemakerruntime::operation::invoke_endpoint::InvokeEndpointError;
use serde::Deserialize;
use serde_json::Value;
use tenantflow_operators::contract::write_csv_row;
use tenantflow_operators::score::Features;
use tower::Service;

use crate::call::CallError;

/// How a scorer is named in errors.
const SCORER: &str = "scorer";
use crate::lookup::{UrlError, http_client, read_body, redact, transport};

/// One row to score.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The tenant's industry.
    pub industry: Box<str>,
    /// The numeric features.
    pub features: Features,
}

/// The rows of one request (shared, so that a retry does not copy them).
pub type ScoreBatch = Arc<[ScoreRow]>;

/// The answer for one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// The churn probability.
    pub score: f64,
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

    /// Most rows one request can carry: one for `/assessChurn`.
    pub fn max_batch(&self) -> Option<std::num::NonZeroUsize> {
        match self {
            Self::AssessChurn(_) => Some(std::num::NonZeroUsize::MIN),
            _ => None,
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

/// A CSV body of `rows`.
pub fn csv_body(rows: &[ScoreRow]) -> String {
    let mut body = String::with_capacity(rows.len() * 48);
    for row in rows {
        write_csv_row(&mut body, &row.industry, &row.features);
    }
    body
}

/// Reads `{"predictions":[{"score":…,"predicted_label":0|1},…],"model_version":…}`,
/// which must hold `rows` predictions.
///
/// # Errors
/// Another shape, a score that is not a probability, or another number of predictions.
pub fn parse_predictions(body: &[u8], rows: usize) -> Result<Scored, String> {
    /// The answer, read without a tree of values.
    #[derive(Deserialize)]
    struct Answer {
        predictions: Vec<PredictionFile>,
        #[serde(default)]
        model_version: Option<Box<str>>,
    }
    #[derive(Deserialize)]
    struct PredictionFile {
        score: Option<f64>,
        predicted_label: Option<Label>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Label {
        Bool(bool),
        Number(f64),
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        format!("expected {{\"predictions\":[{{\"score\":…,\"predicted_label\":0|1}},…]}}: {e}")
    })?;
    if answer.predictions.len() != rows {
        return Err(format!(
            "sent {rows} rows, got {} predictions",
            answer.predictions.len()
        ));
    }
    let predictions = answer
        .predictions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let label = match p.predicted_label {
                Some(Label::Bool(b)) => Some(b),
                Some(Label::Number(1.0)) => Some(true),
                Some(Label::Number(0.0)) => Some(false),
                _ => None,
            };
            prediction(p.score, label).map_err(|e| format!("prediction {}: {e}", i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Scored {
        predictions,
        model_version: answer.model_version.map(Arc::from),
    })
}

/// Reads `/assessChurn`'s `{"churn":bool,"score":f64}`.
///
/// # Errors
/// Another shape, or a score that is not a probability.
pub fn parse_assessment(body: &[u8]) -> Result<Scored, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let one = prediction(
        value.get("score").and_then(Value::as_f64),
        value.get("churn").and_then(Value::as_bool),
    )?;
    Ok(Scored {
        predictions: vec![one],
        model_version: model_version(&value),
    })
}

fn prediction(score: Option<f64>, label: Option<bool>) -> Result<Prediction, String> {
    let score = score
        .filter(|s| (0.0..=1.0).contains(s))
        .ok_or("expected a score between 0 and 1")?;
    let risk = label.ok_or("expected a label: predicted_label 0 or 1, or churn true or false")?;
    Ok(Prediction { score, risk })
}

fn model_version(value: &Value) -> Option<Arc<str>> {
    value
        .get("model_version")
        .and_then(Value::as_str)
        .map(Arc::from)
}

/// A scorer over plain HTTP: `/invocations` or `/assessChurn`.
#[derive(Debug, Clone)]
pub struct HttpScorer {
    http: reqwest::Client,
    url: reqwest::Url,
    /// `url` without credentials, for messages.
    shown: String,
    assess_churn: bool,
}

impl HttpScorer {
    /// A client of `target`.
    ///
    /// # Errors
    /// A target that is not an HTTP one.
    pub fn new(target: &ScorerTarget) -> Result<Self, UrlError> {
        let (text, assess_churn) = match target {
            ScorerTarget::Invocations(url) => (url, false),
            ScorerTarget::AssessChurn(url) => (url, true),
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
            assess_churn,
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
        let request = self
            .http
            .post(self.url.clone())
            .header("accept", "application/json");
        let assess_churn = self.assess_churn;
        Box::pin(async move {
            let request = if assess_churn {
                let [row] = &*rows else {
                    return Err(CallError::Invalid {
                        url: shown,
                        message: format!("/assessChurn takes one company, not {}", rows.len()),
                    });
                };
                let f = &row.features;
                // Both spellings: the original route's Lambda read `employee` (the
                // original job sent `employees`, and every call failed).
                let body = serde_json::json!({
                    "industry": row.industry, "revenu": f.revenu,
                    "employees": f.employees, "employee": f.employees,
                    "job30": f.job30, "job90": f.job90,
                    "monthlyFee": f.monthly_fee, "totalFee": f.total_fee,
                });
                request
                    .header("content-type", "application/json")
                    .body(body.to_string())
            } else {
                request
                    .header("content-type", "text/csv")
                    .body(csv_body(&rows))
            };
            let response = request.send().await.map_err(|e| transport(&shown, e))?;
            let body = read_body(response, &shown).await?;
            let parsed = if assess_churn {
                parse_assessment(&body)
            } else {
                parse_predictions(&body, rows.len())
            };
            parsed.map_err(|message| CallError::Invalid {
                url: shown,
                message,
            })
        })
    }
}

/// A SageMaker endpoint, called through the AWS SDK.
#[derive(Debug, Clone)]
pub struct SageMakerScorer {
    client: aws_sdk_sagemakerruntime::Client,
    endpoint: String,
    shown: String,
}

impl SageMakerScorer {
    /// A client of endpoint `name`: region and credentials from the standard chain,
    /// the service's URL from `endpoint_url` if given (else the chain's, which reads
    /// `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` and `AWS_ENDPOINT_URL`).
    ///
    /// # Errors
    /// No region, or no credentials, in the chain (every request would fail): said at
    /// start, not as a dead letter per event.
    pub async fn connect(name: &str, endpoint_url: Option<&str>) -> Result<Self, UrlError> {
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
        Ok(Self::with_config(config.build(), name))
    }

    /// A client of endpoint `name` with `config`, its retries turned off (the call
    /// stack retries).
    pub fn with_config(config: aws_sdk_sagemakerruntime::Config, name: &str) -> Self {
        let config = config
            .to_builder()
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        Self {
            client: aws_sdk_sagemakerruntime::Client::from_conf(config),
            endpoint: name.to_owned(),
            shown: format!("sagemaker://{name}"),
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
        let request = self
            .client
            .invoke_endpoint()
            .endpoint_name(&self.endpoint)
            .content_type("text/csv")
            .accept("application/json")
            .body(csv_body(&rows).into_bytes().into());
        let shown = self.shown.clone();
        Box::pin(async move {
            let output = request
                .send()
                .await
                .map_err(|e| sagemaker_error(&shown, e))?;
            let body = output.body().map(|b| b.as_ref()).unwrap_or_default();
            parse_predictions(body, rows.len()).map_err(|message| CallError::Invalid {
                url: shown,
                message,
            })
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
        assert_eq!(assess.max_batch().map(|n| n.get()), Some(1));
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
        SageMakerScorer::with_config(config, "churn")
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

    #[test]
    fn predictions_are_checked() {
        let ok = br#"{"predictions":[{"score":0.25,"predicted_label":0},{"score":0.75,"predicted_label":1}],"model_version":"m-1"}"#;
        let scored = parse_predictions(ok, 2).unwrap();
        assert_eq!(
            scored.predictions[1],
            Prediction {
                score: 0.75,
                risk: true
            }
        );
        assert_eq!(scored.model_version.as_deref(), Some("m-1"));
        assert!(
            parse_predictions(ok, 3)
                .unwrap_err()
                .contains("sent 3 rows, got 2")
        );
        let bad = br#"{"predictions":[{"score":1.5,"predicted_label":1}]}"#;
        assert!(
            parse_predictions(bad, 1)
                .unwrap_err()
                .contains("prediction 1")
        );
        assert!(parse_predictions(b"[]", 0).is_err());
        let one = parse_assessment(br#"{"churn":true,"score":0.9}"#).unwrap();
        assert_eq!(
            one.predictions,
            [Prediction {
                score: 0.9,
                risk: true
            }]
        );
        assert!(parse_assessment(br#"{"score":0.9}"#).is_err());
    }
}
