//! Loopback stand-ins for the original deployment's endpoints, as they behave:
//!
//! - [`Gateway`]: API Gateway's `POST /prod/assessChurn` in front of the original Lambda.
//!   The route wants an API key (`x-api-key`; 403 `{"message":"Forbidden"}` without it)
//!   or a SigV4 signature for `execute-api` (checked with the `aws-sigv4` crate against
//!   known credentials). The Lambda reads `revenu, employee, job30, job90, monthlyFee,
//!   totalFee, industry`, answers `{ "churn":true|false}` (no score), and on any failure
//!   the route answers 502 `{"message": "Internal server error"}`. In place of the
//!   SageMaker endpoint behind the Lambda, a model scores in process.
//! - [`LinearLearner`]: a SageMaker runtime endpoint (`POST /endpoints/NAME/invocations`)
//!   of a linear-learner trained on numbers plus a one-hot industry block: it decodes
//!   each CSV row back to features and an industry and answers
//!   `{"predictions":[{"score","predicted_label"}]}`.
//! - [`OriginalTenantManager`]: the original Quarkus service's `GET /api/v1/tenants/{id}`:
//!   the entity with `tenantID` and `riskOfChurn`, 204 with no body for an unknown
//!   tenant; here behind an API key.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tenantflow_operators::score::{Features, Model};

/// One request, as read off the wire.
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Serves `handle` (status, body) on a free loopback port until the test process ends;
/// returns `http://127.0.0.1:PORT`.
fn serve(handle: impl Fn(&HttpRequest) -> (u16, String) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handle = Arc::clone(&handle);
            std::thread::spawn(move || connection(stream, &*handle));
        }
    });
    url
}

fn connection(mut stream: TcpStream, handle: &(dyn Fn(&HttpRequest) -> (u16, String) + Sync)) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
        );
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = HttpRequest {
            method,
            path,
            headers,
            body,
        };
        let (status, body) = handle(&request);
        let answer = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let close = request
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if stream.write_all(answer.as_bytes()).is_err() || close {
            return;
        }
    }
}

/// How the route authorizes callers.
#[derive(Clone)]
pub enum RouteAuth {
    /// An API key of a usage plan, in `x-api-key`.
    ApiKey(String),
    /// IAM: a SigV4 signature for `execute-api` in `region` by these credentials.
    SigV4 {
        access_key: String,
        secret_key: String,
        region: String,
    },
}

/// What the gateway answered, by status.
#[derive(Default)]
pub struct Answers {
    by_status: Mutex<HashMap<u16, usize>>,
    pub requests: AtomicUsize,
}

impl Answers {
    pub fn count(&self, status: u16) -> usize {
        self.by_status
            .lock()
            .unwrap()
            .get(&status)
            .copied()
            .unwrap_or(0)
    }

    fn add(&self, status: u16) {
        self.requests.fetch_add(1, Ordering::SeqCst);
        *self.by_status.lock().unwrap().entry(status).or_default() += 1;
    }
}

/// A running API Gateway + Lambda stand-in.
pub struct Gateway {
    /// `http://127.0.0.1:PORT/prod/assessChurn`.
    pub route: String,
    pub answers: Arc<Answers>,
}

/// API Gateway's answer to a request it refuses before the Lambda.
const FORBIDDEN: &str = r#"{"message":"Forbidden"}"#;
const MISSING_TOKEN: &str = r#"{"message":"Missing Authentication Token"}"#;
const SIGNATURE_MISMATCH: &str = r#"{"message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}"#;
/// The route's answer when the Lambda fails.
pub const INTERNAL: &str = r#"{"message": "Internal server error"}"#;

impl Gateway {
    /// The route, scoring with `model`; with `fail_first`, the first attempt of each
    /// distinct body fails as a Lambda that throws does (502).
    pub fn start(model: Model, auth: RouteAuth, fail_first: bool) -> Self {
        let answers = Arc::new(Answers::default());
        let seen = Mutex::new(std::collections::HashSet::<Vec<u8>>::new());
        let counted = Arc::clone(&answers);
        let url = serve(move |request| {
            let (status, body) = route(&model, &auth, fail_first, &seen, request);
            counted.add(status);
            (status, body)
        });
        Gateway {
            route: format!("{url}/prod/assessChurn"),
            answers,
        }
    }
}

fn route(
    model: &Model,
    auth: &RouteAuth,
    fail_first: bool,
    seen: &Mutex<std::collections::HashSet<Vec<u8>>>,
    request: &HttpRequest,
) -> (u16, String) {
    if request.method != "POST" || request.path != "/prod/assessChurn" {
        return (403, MISSING_TOKEN.into());
    }
    match auth {
        RouteAuth::ApiKey(key) => {
            if request.header("x-api-key") != Some(key.as_str()) {
                return (403, FORBIDDEN.into());
            }
        }
        RouteAuth::SigV4 {
            access_key,
            secret_key,
            region,
        } => {
            let Some(given) = request.header("authorization") else {
                return (403, MISSING_TOKEN.into());
            };
            if expected_authorization(request, access_key, secret_key, region).as_deref()
                != Some(given)
            {
                return (403, SIGNATURE_MISMATCH.into());
            }
        }
    }
    if fail_first && seen.lock().unwrap().insert(request.body.clone()) {
        return (502, INTERNAL.into());
    }
    match lambda(model, &request.body) {
        Some(churn) => (200, format!("{{ \"churn\":{churn}}}")),
        None => (502, INTERNAL.into()),
    }
}

/// The Lambda: the company's fields as it reads them (`employee`, singular), or `None`
/// where it would throw.
fn lambda(model: &Model, body: &[u8]) -> Option<bool> {
    let company: Value = serde_json::from_slice(body).ok()?;
    let number = |name: &str| company.get(name)?.as_f64();
    let features = Features {
        revenu: number("revenu")?,
        employees: number("employee")?,
        job30: number("job30")?,
        job90: number("job90")?,
        monthly_fee: number("monthlyFee")?,
        total_fee: number("totalFee")?,
    };
    let industry = company.get("industry")?.as_str()?;
    let score = model.score(&features, industry, model.industry_weight(industry));
    Some(model.is_risk(score))
}

/// The `authorization` header these credentials give the request, computed by
/// `aws-sigv4` at the time of its `x-amz-date` over the headers it says it signed.
fn expected_authorization(
    request: &HttpRequest,
    access_key: &str,
    secret_key: &str,
    region: &str,
) -> Option<String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_smithy_runtime_api::client::identity::Identity;
    let given = request.header("authorization")?;
    let signed: Vec<&str> = given
        .split("SignedHeaders=")
        .nth(1)?
        .split(',')
        .next()?
        .split(';')
        .collect();
    let date = request.header("x-amz-date")?;
    let time = parse_amz_date(date)?;
    let identity: Identity =
        aws_credential_types::Credentials::new(access_key, secret_key, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("execute-api")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .ok()?
        .into();
    let host = request.header("host")?;
    let uri = format!("http://{host}{}", request.path);
    let headers = request
        .headers
        .iter()
        .filter(|(n, _)| signed.contains(&n.as_str()) && n != "x-amz-date")
        .map(|(n, v)| (n.as_str(), v.as_str()));
    let signable = SignableRequest::new(
        &request.method,
        uri,
        headers,
        SignableBody::Bytes(&request.body),
    )
    .ok()?;
    let (instructions, _) = sign(signable, &params).ok()?.into_parts();
    instructions
        .headers()
        .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_owned())
}

/// `YYYYMMDDTHHMMSSZ` as a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let digits = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hh, mm, ss) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// The built-in model's industries, in the order of the shipped contract
/// (`contracts/linear-learner.toml`); the generator's tenants are of these.
pub fn linear_learner_industries() -> Vec<String> {
    [
        "IT",
        "consulting",
        "energy",
        "finance",
        "gov",
        "health",
        "retail",
        "service",
        "travel",
    ]
    .map(String::from)
    .to_vec()
}

/// Writes to `path` the scoring contract of [`LinearLearner`]'s rows: the six numbers,
/// then `industries` one-hot.
pub fn write_linear_learner_contract(path: &std::path::Path, industries: &[String]) {
    std::fs::write(
        path,
        format!(
            "request = \"csv\"\ncolumns = [\"revenu\", \"employees\", \"job30\", \"job90\", \"monthlyFee\", \"totalFee\", \"industry\"]\nindustry = \"one-hot\"\nindustries = {industries:?}\nanswer = \"sagemaker\"\n"
        ),
    )
    .unwrap();
}

/// A running linear-learner endpoint stand-in.
pub struct LinearLearner {
    /// `http://127.0.0.1:PORT`: the SageMaker runtime URL (`--sagemaker-endpoint-url`).
    pub url: String,
    /// Rows scored.
    pub rows: Arc<AtomicUsize>,
}

impl LinearLearner {
    /// Endpoint `name`, its rows `revenu,employees,job30,job90,monthlyFee,totalFee`
    /// then one column per industry of `industries`; scored by `model`.
    pub fn start(name: &str, model: Model, industries: Vec<String>) -> Self {
        let rows = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&rows);
        let path = format!("/endpoints/{name}/invocations");
        let url = serve(move |request| {
            if request.method != "POST" || request.path != path {
                return (404, r#"{"message":"no such endpoint"}"#.into());
            }
            if request.header("content-type") != Some("text/csv") {
                return (415, r#"{"message":"text/csv only"}"#.into());
            }
            let text = String::from_utf8_lossy(&request.body);
            let mut predictions = Vec::new();
            for line in text.lines() {
                let Some((features, industry)) = decode_row(line, &industries) else {
                    return (400, format!(r#"{{"message":"cannot read row `{line}`"}}"#));
                };
                let score = model.score(&features, industry, model.industry_weight(industry));
                predictions.push(serde_json::json!({
                    "score": score,
                    "predicted_label": u8::from(model.is_risk(score)),
                }));
                counted.fetch_add(1, Ordering::SeqCst);
            }
            (
                200,
                serde_json::json!({ "predictions": predictions }).to_string(),
            )
        });
        LinearLearner { url, rows }
    }
}

/// Six numbers and a one-hot block back to features and an industry (`""`: none set).
fn decode_row<'a>(line: &str, industries: &'a [String]) -> Option<(Features, &'a str)> {
    let cells: Vec<&str> = line.split(',').collect();
    if cells.len() != 6 + industries.len() {
        return None;
    }
    let n = |i: usize| cells[i].parse::<f64>().ok();
    let features = Features {
        revenu: n(0)?,
        employees: n(1)?,
        job30: n(2)?,
        job90: n(3)?,
        monthly_fee: n(4)?,
        total_fee: n(5)?,
    };
    let mut industry = "";
    for (i, name) in industries.iter().enumerate() {
        match cells[6 + i] {
            "1" if industry.is_empty() => industry = name,
            "0" => {}
            _ => return None,
        }
    }
    Some((features, industry))
}

/// A running stand-in of the original TenantManager.
pub struct OriginalTenantManager {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Requests refused for a missing or wrong key.
    pub refused: Arc<AtomicUsize>,
}

impl OriginalTenantManager {
    /// Serves `tenants` (id and the entity's JSON) to callers with `key`.
    pub fn start(tenants: Vec<(String, Value)>, key: &str) -> Self {
        let refused = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&refused);
        let key = key.to_owned();
        let url = serve(move |request| {
            if request.header("x-api-key") != Some(key.as_str()) {
                counted.fetch_add(1, Ordering::SeqCst);
                return (401, r#"{"message":"no key"}"#.into());
            }
            let Some(id) = request.path.strip_prefix("/api/v1/tenants/") else {
                return (404, "{}".into());
            };
            match tenants.iter().find(|(t, _)| t == id) {
                Some((_, entity)) => (200, entity.to_string()),
                // JAX-RS answers a null entity with 204 and no body.
                None => (204, String::new()),
            }
        });
        OriginalTenantManager { url, refused }
    }
}

#[test]
fn the_route_fails_as_the_original_on_a_bad_body() {
    let gateway = Gateway::start(Model::builtin(), RouteAuth::ApiKey("k".into()), false);
    let client = |key: Option<&str>, body: &str| {
        let url = gateway.route.strip_prefix("http://").unwrap();
        let (host, path) = url.split_once('/').unwrap();
        let headers: Vec<(&str, &str)> = key.map(|k| ("x-api-key", k)).into_iter().collect();
        crate::common::http(host, "POST", &format!("/{path}"), &headers, Some(body))
    };
    let good = r#"{"industry":"retail","revenu":1000,"employee":10,"job30":1,"job90":2,"monthlyFee":10.0,"totalFee":30.0}"#;
    assert_eq!(client(None, good), (403, FORBIDDEN.to_owned()));
    let (status, answer) = client(Some("k"), good);
    assert!(
        status == 200 && answer.starts_with(r#"{ "churn":"#),
        "{status} {answer}"
    );
    // `employees` alone: the Lambda reads `employee` and throws.
    assert_eq!(
        client(Some("k"), &good.replace("employee", "employees")),
        (502, INTERNAL.to_owned())
    );
    assert_eq!(client(Some("k"), "not json"), (502, INTERNAL.to_owned()));
}
