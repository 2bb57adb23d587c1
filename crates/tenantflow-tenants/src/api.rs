//! The REST API (axum): the original service's paths, answered correctly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::db::{Created, Db, DbError, SCHEMA_VERSION};
use crate::tenant::{FieldError, Tenant};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 << 10;
/// Most tenants in one page.
pub const MAX_PAGE: i64 = 1000;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The key writes need; `None`: the API is read-only.
    pub api_key: Option<Arc<str>>,
    /// Request counters for `/metrics`.
    pub metrics: Arc<ApiMetrics>,
    /// Wakes the outbox relay after a write (it also looks every second).
    pub outbox_wake: Option<Arc<tokio::sync::Notify>>,
    /// False while the seed file loads: tenant requests and `/readyz` answer 503 then
    /// (a lookup retries; a 404 would make a seeded tenant unknown).
    pub ready: Arc<std::sync::atomic::AtomicBool>,
}

impl AppState {
    fn wrote(&self) {
        if let Some(wake) = &self.outbox_wake {
            wake.notify_one();
        }
    }
}

/// Requests by route and status, and the outbox's counters.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    /// Records published from the outbox.
    pub outbox_published: std::sync::atomic::AtomicU64,
    /// Failed attempts to publish the outbox.
    pub outbox_errors: std::sync::atomic::AtomicU64,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/tenants", get(list).post(create))
        .route("/api/v1/tenants/count", get(count))
        .route(
            "/api/v1/tenants/{tenant_id}",
            get(fetch).put(replace).delete(remove),
        )
        .route("/api/v1/version", get(version))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(json_too_large))
        .route_layer(middleware::from_fn_with_state(state.clone(), until_ready))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// An error answer: a status and a JSON body saying why.
struct ApiError(StatusCode, Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "Database unavailable.");
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "the database is unavailable; try again"}),
            )
        } else {
            // A retry meets the same failure (a row that cannot be read): not a 503.
            tracing::error!(error = %e, "Database failure that a retry will not mend.");
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "internal error reading the database; see the service's log"}),
            )
        }
    }
}

fn invalid(errors: Vec<FieldError>) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid tenant", "fields": errors}),
    )
}

fn not_found(id: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        json!({"error": format!("no tenant `{id}`")}),
    )
}

/// The body as a JSON object without repeated keys, or a 4xx that says what is wrong.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    // The media type, without parameters, compared as RFC 9110 says: case-insensitively.
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"error": "expected Content-Type: application/json"}),
        ));
    }
    let bad = |e: serde_json::Error| {
        ApiError(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("the body is not JSON: {e}")}),
        )
    };
    // A value, then its top-level keys once more to refuse repeated ones (serde keeps
    // the last silently).
    let value: Value = serde_json::from_slice(body).map_err(bad)?;
    if value.is_object() {
        serde_json::from_slice::<UniqueKeys>(body).map_err(|e| {
            ApiError(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("the body repeats a field: {e}")}),
            )
        })?;
    }
    Ok(value)
}

/// A JSON object's keys, refusing a key seen twice.
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("`{key}` appears twice")));
                    }
                }
                Ok(UniqueKeys)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// Writes need the operator's key in `x-api-key`.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.api_key else {
        return Err(ApiError(
            StatusCode::UNAUTHORIZED,
            json!({"error": "this service is read-only: it was started without --api-key"}),
        ));
    };
    let given = headers.get("x-api-key").map(HeaderValue::as_bytes);
    match given {
        Some(given) if constant_time_eq(given, key.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            json!({"error": "wrong API key in x-api-key"}),
        )),
        None => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            json!({"error": "writes need the API key in the x-api-key header"}),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Deserialize)]
struct Page {
    limit: Option<String>,
    after: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = match page.limit.as_deref() {
        None => 100,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid query", "fields": [{"field": "limit",
                        "expected": format!("an integer from 1 to {MAX_PAGE}"), "got": text}]}),
                ));
            }
        },
    };
    let tenants = state
        .db
        .list(page.after.as_deref().unwrap_or(""), limit)
        .await?;
    let next = if tenants.len() as i64 == limit {
        tenants.last().map(|t| t.tenant_id.clone())
    } else {
        None
    };
    Ok(Json(json!({"tenants": tenants, "next": next})))
}

async fn count(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"count": state.db.count().await?})))
}

async fn fetch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    match state.db.get(&id).await? {
        Some(tenant) => Ok(Json(tenant)),
        None => Err(not_found(&id)),
    }
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let tenant = Tenant::from_json(&parse_body(&headers, &body)?, None).map_err(invalid)?;
    match state.db.create(&tenant).await? {
        Created::Yes => {
            state.wrote();
            let location = format!("/api/v1/tenants/{}", tenant.tenant_id);
            let mut response = (StatusCode::CREATED, Json(&tenant)).into_response();
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            Ok(response)
        }
        Created::Duplicate => Err(ApiError(
            StatusCode::CONFLICT,
            json!({"error": format!("tenant `{}` exists; PUT /api/v1/tenants/{} replaces it", tenant.tenant_id, tenant.tenant_id)}),
        )),
    }
}

async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let tenant = Tenant::from_json(&parse_body(&headers, &body)?, Some(&id)).map_err(invalid)?;
    if tenant.tenant_id != id {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid tenant", "fields": [{"field": "tenantID",
                "expected": format!("`{id}`, the id of the URL"), "got": tenant.tenant_id}]}),
        ));
    }
    let existed = state.db.put(&tenant).await?;
    state.wrote();
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(&tenant)).into_response())
}

async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    authorize(&state, &headers)?;
    match state.db.delete(&id).await? {
        Some(_) => {
            state.wrote();
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(not_found(&id)),
    }
}

async fn version(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "name": "tenantflow tenant-manager",
        "version": env!("CARGO_PKG_VERSION"),
        "schema": SCHEMA_VERSION,
        "database": match state.db.backend() {
            crate::db::Backend::Sqlite => "sqlite",
            crate::db::Backend::Postgres => "postgres",
        },
    }))
}

/// The body limit's 413 is plain text: it gets a JSON body like every other error.
async fn json_too_large(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"error": format!("the body is over {MAX_BODY_BYTES} bytes")}),
        )
        .into_response();
    }
    response
}

/// While the seed file loads, tenant requests get a 503 with `Retry-After`.
async fn until_ready(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let loading = !state.ready.load(std::sync::atomic::Ordering::Acquire);
    if loading && request.uri().path().starts_with("/api/v1/tenants") {
        let mut response = ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the service is loading its seed file; try again"}),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    next.run(request).await
}

async fn ready(State(state): State<AppState>) -> Response {
    if !state.ready.load(std::sync::atomic::Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "seeding\n").into_response()
    } else if state.db.ping().await {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    use std::fmt::Write;
    use std::sync::atomic::Ordering;
    let mut out = String::new();
    out.push_str("# TYPE tenantflow_tm_requests_total counter\n");
    if let Ok(requests) = state.metrics.requests.lock() {
        for ((method, route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "tenantflow_tm_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let m = &state.metrics;
    let _ = writeln!(
        out,
        "# TYPE tenantflow_tm_outbox_published_total counter\ntenantflow_tm_outbox_published_total {}",
        m.outbox_published.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# TYPE tenantflow_tm_outbox_errors_total counter\ntenantflow_tm_outbox_errors_total {}",
        m.outbox_errors.load(Ordering::Relaxed)
    );
    if let Ok(n) = state.db.outbox_len().await {
        let _ = writeln!(
            out,
            "# TYPE tenantflow_tm_outbox_pending gauge\ntenantflow_tm_outbox_pending {n}"
        );
    }
    if let Ok(n) = state.db.count().await {
        let _ = writeln!(
            out,
            "# TYPE tenantflow_tm_tenants gauge\ntenantflow_tm_tenants {n}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    if let Ok(mut requests) = state.metrics.requests.lock() {
        *requests
            .entry((method, route, response.status().as_u16()))
            .or_default() += 1;
    }
    response
}
