//! The TenantManager's `GET /api/v1/tenants/{tenantID}`: a profile, or "no such
//! tenant" (404; also 204, which the original service answered for a missing tenant).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use reqwest::StatusCode;
use tenantflow_core::CompanyProfile;
use tenantflow_core::Record;
use tenantflow_core::decode::{Decoder, DefaultKind};
use tower::Service;

use crate::auth::Auth;
use crate::call::CallError;

/// What the TenantManager says of a tenant.
#[derive(Debug, Clone, PartialEq)]
pub enum LookupAnswer {
    /// Its profile.
    Found(CompanyProfile),
    /// No such tenant.
    Unknown,
}

/// Why a service's URL is refused.
#[derive(Debug, thiserror::Error)]
#[error("{service} `{url}`: {message}")]
pub struct UrlError {
    service: &'static str,
    url: String,
    message: String,
}

impl UrlError {
    /// `url` (already without credentials) of `service` refused for `message`.
    pub fn new(service: &'static str, url: &str, message: &str) -> Self {
        Self {
            service,
            url: url.into(),
            message: message.into(),
        }
    }
}

/// The HTTP client of remote calls: a short connect timeout (an attempt's timeout is
/// the call stack's) and enough idle connections for every request in flight.
pub(crate) fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(256)
        .build()
}

/// The body of a successful answer; any other status is a [`CallError::Status`] with
/// the start of the body and what `Retry-After` asked.
pub(crate) async fn read_body(
    response: reqwest::Response,
    shown: &str,
) -> Result<bytes::Bytes, CallError> {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.bytes().await.map_err(|e| transport(shown, e))?;
    if !status.is_success() {
        let end = body.len().min(BODY_IN_ERROR);
        return Err(CallError::Status {
            url: shown.into(),
            status: status.as_u16(),
            retry_after,
            body: String::from_utf8_lossy(&body[..end]).trim().to_owned(),
        });
    }
    Ok(body)
}

/// A TenantManager client: `GET {base}/api/v1/tenants/{id}`.
#[derive(Debug, Clone)]
pub struct TenantManagerClient {
    http: reqwest::Client,
    base: reqwest::Url,
    /// `base` without credentials, for messages.
    shown: String,
    auth: Auth,
}

/// Most bytes of an answer's body kept in an error message.
const BODY_IN_ERROR: usize = 200;

impl TenantManagerClient {
    /// A client of the service at `base` (`http://host:port`, optionally with a path
    /// prefix).
    ///
    /// # Errors
    /// A URL that is not `http` or `https`.
    pub fn new(base: &str) -> Result<Self, UrlError> {
        let refuse = |message: &str| UrlError::new("TenantManager URL", &redact(base), message);
        let mut url = reqwest::Url::parse(base).map_err(|e| refuse(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse("expected http:// or https://"));
        }
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let mut shown = url.clone();
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        let http = http_client().map_err(|e| refuse(&e.to_string()))?;
        Ok(Self {
            http,
            base: url,
            shown: shown.to_string(),
            auth: Auth::None,
        })
    }

    /// The client, its requests authenticated as `auth` says.
    pub fn with_auth(self, auth: Auth) -> Self {
        Self { auth, ..self }
    }

    /// The base URL without credentials.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn url_of(&self, id: &str) -> (reqwest::Url, String) {
        let path = format!("api/v1/tenants/{}", encode_segment(id));
        let shown = format!("{}{path}", self.shown);
        match self.base.join(&path) {
            Ok(url) => (url, shown),
            Err(_) => (self.base.clone(), shown),
        }
    }
}

impl Service<Box<str>> for TenantManagerClient {
    type Response = LookupAnswer;
    type Error = CallError;
    type Future = Pin<Box<dyn Future<Output = Result<LookupAnswer, CallError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), CallError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, id: Box<str>) -> Self::Future {
        let (url, shown) = self.url_of(&id);
        let request = self
            .http
            .get(url)
            .header("accept", "application/json")
            .build();
        let http = self.http.clone();
        let auth = self.auth.clone();
        Box::pin(async move {
            let mut request = request.map_err(|e| transport(&shown, e))?;
            auth.apply(&mut request, &shown).await?;
            let response = http
                .execute(request)
                .await
                .map_err(|e| transport(&shown, e))?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND || status == StatusCode::NO_CONTENT {
                return Ok(LookupAnswer::Unknown);
            }
            let body = read_body(response, &shown).await?;
            let invalid = |message: String| CallError::Invalid {
                url: shown.clone(),
                message,
            };
            match Decoder::new(DefaultKind::Company).decode_json(&body) {
                Ok(Record::Company(company)) if *company.company_id == *id => {
                    Ok(LookupAnswer::Found(company.profile.to_profile()))
                }
                Ok(Record::Company(company)) => Err(invalid(format!(
                    "asked for tenant `{id}`, got `{}`",
                    company.company_id
                ))),
                Ok(Record::Job(_)) => Err(invalid("a job event, not a tenant".into())),
                Err(e) => Err(invalid(e.to_string())),
            }
        })
    }
}

pub(crate) fn transport(url: &str, error: reqwest::Error) -> CallError {
    // Without its URL (which may hold credentials; `url` is the shown one). The full
    // chain says what happened (refused, reset); reqwest's own message only "error
    // sending request".
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    if error.is_connect() {
        CallError::Connect {
            url: url.into(),
            message,
        }
    } else {
        CallError::Transport {
            url: url.into(),
            message,
        }
    }
}

/// Percent-encodes a path segment (everything but RFC 3986's unreserved characters).
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A URL as it may be shown: without user and password.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) if !host.contains('/') || rest.find('@') < rest.find('/') => {
                format!("{scheme}://…@{host}")
            }
            _ => url.into(),
        },
        None => url.into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_encoded_as_one_path_segment() {
        let client = TenantManagerClient::new("http://127.0.0.1:9/prefix").unwrap();
        let (url, shown) = client.url_of("comp 4/x?y");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/prefix/api/v1/tenants/comp%204%2Fx%3Fy"
        );
        assert_eq!(shown, url.as_str());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_retryable_connect_error_without_credentials() {
        use tower::ServiceExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client =
            TenantManagerClient::new(&format!("http://user:secret@127.0.0.1:{port}")).unwrap();
        let error = client.oneshot("comp_4".into()).await.unwrap_err();
        assert!(matches!(error, CallError::Connect { .. }), "{error:?}");
        assert!(error.is_retryable());
        let text = error.to_string();
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("/api/v1/tenants/comp_4"), "{text}");
    }

    #[test]
    fn credentials_never_show() {
        let client = TenantManagerClient::new("http://user:secret@127.0.0.1:9").unwrap();
        let (_, shown) = client.url_of("comp_4");
        assert_eq!(shown, "http://127.0.0.1:9/api/v1/tenants/comp_4");
        let error = TenantManagerClient::new("ftp://user:secret@host/x").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
