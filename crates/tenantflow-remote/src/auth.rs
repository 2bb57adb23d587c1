//! How requests to an HTTP service prove who sends them: nothing, an API key in
//! `x-api-key` (API Gateway's usage-plan keys, the TenantManager's write key), or an AWS
//! Signature Version 4 for `execute-api` (an API Gateway route with IAM authorization),
//! signed by the official `aws-sigv4` crate with credentials from the standard chain.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::call::CallError;

/// The AWS service an API Gateway route is signed for.
pub const EXECUTE_API: &str = "execute-api";

/// An API key: shown as `***` by `Debug`, never in a message.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// A key, refused when empty or not a header value.
    ///
    /// # Errors
    /// An empty key, or one with characters a header cannot carry (the key is not in
    /// the message).
    pub fn new(key: &str) -> Result<Self, String> {
        let key = key.trim();
        if key.is_empty() {
            return Err("the API key is empty".into());
        }
        if reqwest::header::HeaderValue::from_str(key).is_err() {
            return Err("the API key has characters a header cannot carry".into());
        }
        Ok(Self(key.into()))
    }

    /// The key itself, to send.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Signs requests for `execute-api` in one region.
#[derive(Clone)]
pub struct SigV4 {
    credentials: SharedCredentialsProvider,
    region: Arc<str>,
}

impl fmt::Debug for SigV4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl SigV4 {
    /// A signer with these credentials for `region`.
    pub fn new(credentials: SharedCredentialsProvider, region: &str) -> Self {
        Self {
            credentials,
            region: region.into(),
        }
    }

    /// A signer with the standard chain's credentials (`AWS_ACCESS_KEY_ID`, a profile, a
    /// role), for the region of an `execute-api` URL (`{api}.execute-api.{region}.…`), or
    /// else the chain's region.
    ///
    /// # Errors
    /// No region, or no credentials: said at start, not as a failure per request.
    pub async fn from_chain(url: &str) -> Result<Self, String> {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        let region = region_of(url)
            .or_else(|| shared.region().map(|r| r.as_ref().to_owned()))
            .ok_or("no AWS region to sign for: set AWS_REGION, or a region in the AWS profile")?;
        let provider = shared
            .credentials_provider()
            .ok_or("no AWS credentials provider")?;
        provider.provide_credentials().await.map_err(|e| {
            format!(
                "no AWS credentials to sign with ({e}): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or a role"
            )
        })?;
        Ok(Self::new(provider, &region))
    }

    /// The region signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Adds the signature's headers (`authorization`, `x-amz-date`, and
    /// `x-amz-security-token` with temporary credentials) to `request`, whose body (if
    /// any) must be in memory.
    ///
    /// # Errors
    /// Credentials that cannot be had now (retried: a role's refresh can fail for a
    /// moment), or a request that cannot be signed.
    pub async fn sign(&self, request: &mut reqwest::Request, shown: &str) -> Result<(), CallError> {
        let credentials =
            self.credentials
                .provide_credentials()
                .await
                .map_err(|e| CallError::Transport {
                    url: shown.into(),
                    message: format!("no AWS credentials to sign with: {e}"),
                })?;
        let identity = Identity::from(credentials);
        let invalid = |message: String| CallError::Invalid {
            url: shown.into(),
            message,
        };
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(EXECUTE_API)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| invalid(format!("cannot sign: {e}")))?
            .into();
        let body = request
            .body()
            .map(|b| b.as_bytes().unwrap_or_default())
            .unwrap_or_default();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            request.url().as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| invalid(format!("cannot sign: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| invalid(format!("cannot sign: {e}")))?
            .into_parts();
        let mut added = Vec::new();
        for (name, value) in instructions.headers() {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| invalid(format!("cannot sign: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| invalid(format!("cannot sign: {e}")))?;
            added.push((name, value));
        }
        for (name, value) in added {
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }
}

/// The region of an API Gateway URL, `https://{api}.execute-api.{region}.amazonaws.com/…`.
pub fn region_of(url: &str) -> Option<String> {
    let host = reqwest::Url::parse(url).ok()?.host_str()?.to_owned();
    let (_, rest) = host.split_once(".execute-api.")?;
    let (region, _) = rest.split_once('.')?;
    (!region.is_empty()).then(|| region.to_owned())
}

/// How requests to one service are authenticated.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// Not at all.
    #[default]
    None,
    /// The key in `x-api-key`.
    ApiKey(ApiKey),
    /// An AWS SigV4 signature for `execute-api`.
    SigV4(SigV4),
}

impl Auth {
    /// Adds what proves the sender to `request`.
    ///
    /// # Errors
    /// See [`SigV4::sign`].
    pub async fn apply(
        &self,
        request: &mut reqwest::Request,
        shown: &str,
    ) -> Result<(), CallError> {
        match self {
            Auth::None => Ok(()),
            Auth::ApiKey(key) => {
                // `ApiKey::new` checked that the key is a header value.
                let mut value =
                    reqwest::header::HeaderValue::from_str(key.expose()).map_err(|_| {
                        CallError::Invalid {
                            url: shown.into(),
                            message: "the API key is not a header value".into(),
                        }
                    })?;
                value.set_sensitive(true);
                request.headers_mut().insert("x-api-key", value);
                Ok(())
            }
            Auth::SigV4(signer) => signer.sign(request, shown).await,
        }
    }
}

/// The word of an authentication, as flags and configuration files write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// `none`.
    #[default]
    None,
    /// `api-key`: the key in `x-api-key`.
    ApiKey,
    /// `sigv4`: an AWS SigV4 signature for `execute-api`.
    Sigv4,
}

/// How a service is to be authenticated, as configured; [`AuthConfig::resolve`] makes
/// the [`Auth`] (reading the AWS chain for SigV4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthConfig {
    /// No authentication.
    #[default]
    None,
    /// This key in `x-api-key`.
    ApiKey(ApiKey),
    /// SigV4 for `execute-api`, with the standard chain's credentials.
    SigV4,
}

impl AuthConfig {
    /// The authentication `kind` says, with `key` for `api-key`.
    ///
    /// # Errors
    /// `api-key` without a key, or a key with another kind (it would not be sent); the
    /// key is never in the message.
    pub fn new(kind: AuthKind, key: Option<&str>) -> Result<Self, String> {
        match (kind, key) {
            (AuthKind::ApiKey, Some(key)) => ApiKey::new(key).map(AuthConfig::ApiKey),
            (AuthKind::ApiKey, None) => Err("api-key needs the key".into()),
            (_, Some(_)) => Err("a key is given but the authentication is not api-key".into()),
            (AuthKind::None, None) => Ok(AuthConfig::None),
            (AuthKind::Sigv4, None) => Ok(AuthConfig::SigV4),
        }
    }

    /// The [`Auth`] of requests to `url`.
    ///
    /// # Errors
    /// SigV4 without a region or credentials in the chain.
    pub async fn resolve(&self, url: &str) -> Result<Auth, String> {
        Ok(match self {
            AuthConfig::None => Auth::None,
            AuthConfig::ApiKey(key) => Auth::ApiKey(key.clone()),
            AuthConfig::SigV4 => Auth::SigV4(SigV4::from_chain(url).await?),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_credential_types::Credentials;

    #[test]
    fn keys_never_show() {
        let key = ApiKey::new(" s3cr3t ").unwrap();
        assert_eq!(key.expose(), "s3cr3t");
        assert!(!format!("{:?}", Auth::ApiKey(key)).contains("s3cr3t"));
        assert!(ApiKey::new("  ").is_err());
        let error = ApiKey::new("bad\nkey").unwrap_err();
        assert!(!error.contains("bad"), "{error}");
    }

    #[test]
    fn a_key_goes_with_api_key_only() {
        assert_eq!(
            AuthConfig::new(AuthKind::ApiKey, Some("k")).unwrap(),
            AuthConfig::ApiKey(ApiKey::new("k").unwrap())
        );
        assert!(AuthConfig::new(AuthKind::ApiKey, None).is_err());
        let error = AuthConfig::new(AuthKind::Sigv4, Some("k-secret")).unwrap_err();
        assert!(!error.contains("k-secret"), "{error}");
        assert_eq!(
            AuthConfig::new(AuthKind::Sigv4, None).unwrap(),
            AuthConfig::SigV4
        );
        assert_eq!(
            AuthConfig::new(AuthKind::None, None).unwrap(),
            AuthConfig::None
        );
    }

    #[test]
    fn the_region_comes_from_an_execute_api_host() {
        assert_eq!(
            region_of("https://abc123.execute-api.us-west-2.amazonaws.com/prod/assessChurn")
                .as_deref(),
            Some("us-west-2")
        );
        assert_eq!(region_of("http://127.0.0.1:9/prod/assessChurn"), None);
    }

    #[tokio::test]
    async fn a_signature_is_added_and_the_secret_is_not() {
        let signer = SigV4::new(
            SharedCredentialsProvider::new(Credentials::new(
                "AKIDTEST",
                "secret-key",
                None,
                None,
                "test",
            )),
            "us-west-2",
        );
        let mut request = reqwest::Client::new()
            .post("http://127.0.0.1:9/prod/assessChurn")
            .header("content-type", "application/json")
            .body("{}")
            .build()
            .unwrap();
        signer.sign(&mut request, "shown").await.unwrap();
        let authorization = request.headers()["authorization"].to_str().unwrap();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
                && authorization.contains("/us-west-2/execute-api/aws4_request"),
            "{authorization}"
        );
        assert!(request.headers().contains_key("x-amz-date"));
        assert!(!format!("{request:?} {signer:?}").contains("secret-key"));
    }
}
