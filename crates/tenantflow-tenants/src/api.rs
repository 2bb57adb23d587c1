//! The REST API (axum): the original service's paths and shapes, answered correctly.
//!
//! The original Quarkus service's clients keep working: the list is a JSON array (the
//! whole table when no page is asked for, streamed; a page with `?limit=&after=` and a
//! `Link: <…>; rel="next"` header), the count a bare number, a tenant carries `tenantID`
//! (and `companyID`, the job's name), a new tenant may be the 4 fields
//! `tenantID, industry, revenu, employees`, and `/q/health/live` and `/q/health/ready`
//! answer as Quarkus' do. An unknown tenant is a 404 (the original's 204 was an accident
//! of its framework). The OpenAPI document, generated from these handlers, is at
//! `/openapi.json` (and `/q/openapi`).

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
use crate::tenant::{FieldError, Tenant, TenantJson};

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
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .route("/q/health/live", get(live))
        .route("/q/health/ready", get(quarkus_ready))
        .route("/q/health", get(quarkus_ready))
        .route("/openapi.json", get(openapi))
        .route("/q/openapi", get(openapi))
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

/// A page of the list: `limit` tenants after the id `after`, in id order.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Tenants in the page, 1 to 1000 (100 when only `after` is given). Without `limit`
    /// and `after`, the whole table.
    #[param(value_type = Option<i64>)]
    limit: Option<String>,
    /// The last id of the previous page.
    after: Option<String>,
}

/// Tenants fetched from the database at a time when the whole table is listed.
const STREAM_PAGE: i64 = MAX_PAGE;

/// Lists tenants in id order, as a JSON array: the whole table (streamed, as the
/// original service's list), or one page when `limit` or `after` is given, with a
/// `Link: <…>; rel="next"` header when there may be more.
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(Page),
    responses(
        (status = 200, description = "Tenants in id order", body = [TenantJson],
            headers(("link" = String, description = "`<URL>; rel=\"next\"` of the next page, when there may be one"))),
        (status = 400, description = "An invalid `limit`"),
        (status = 503, description = "The database is unavailable"),
    ))]
async fn list(
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    if page.limit.is_none() && page.after.is_none() {
        return Ok(whole_table(state.db));
    }
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
    let next = (tenants.len() as i64 == limit)
        .then(|| tenants.last().map(|t| t.tenant_id.clone()))
        .flatten();
    let mut response = Json(&tenants).into_response();
    if let Some(after) = next {
        let link = format!(
            "</api/v1/tenants?limit={limit}&after={}>; rel=\"next\"",
            encode_query(&after)
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

/// The whole table as one JSON array, read and sent a page at a time: memory stays
/// bounded however many tenants there are. A database failure midway cuts the answer
/// short (the client sees an incomplete array), and is logged.
fn whole_table(db: Db) -> Response {
    enum At {
        Start,
        After(String),
        Done,
    }
    let pages = futures_util::stream::unfold(At::Start, move |at| {
        let db = db.clone();
        async move {
            let (after, first) = match at {
                At::Start => (String::new(), true),
                At::After(id) => (id, false),
                At::Done => return None,
            };
            match db.list(&after, STREAM_PAGE).await {
                Ok(tenants) => {
                    let mut chunk = Vec::new();
                    for (i, tenant) in tenants.iter().enumerate() {
                        chunk.push(if first && i == 0 { b'[' } else { b',' });
                        if serde_json::to_writer(&mut chunk, tenant).is_err() {
                            return Some((
                                Err(std::io::Error::other("encoding a tenant")),
                                At::Done,
                            ));
                        }
                    }
                    if first && tenants.is_empty() {
                        chunk.push(b'[');
                    }
                    let next = match tenants.last() {
                        Some(last) if tenants.len() as i64 == STREAM_PAGE => {
                            At::After(last.tenant_id.clone())
                        }
                        _ => {
                            chunk.push(b']');
                            At::Done
                        }
                    };
                    Some((Ok(Bytes::from(chunk)), next))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Listing tenants failed midway: the answer is cut short.");
                    Some((Err(std::io::Error::other(e.to_string())), At::Done))
                }
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(pages),
    )
        .into_response()
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The number of tenants, as a bare JSON number (as the original service answered).
#[utoipa::path(get, path = "/api/v1/tenants/count", tag = "tenants",
    responses((status = 200, description = "The number of tenants", body = i64)))]
async fn count(State(state): State<AppState>) -> Result<Json<i64>, ApiError> {
    Ok(Json(state.db.count().await?))
}

/// One tenant.
#[utoipa::path(get, path = "/api/v1/tenants/{tenantID}", tag = "tenants",
    params(("tenantID" = String, Path, description = "The tenant's id")),
    responses(
        (status = 200, description = "The tenant", body = TenantJson),
        (status = 404, description = "No such tenant (the original service answered 204)"),
    ))]
async fn fetch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Tenant>, ApiError> {
    match state.db.get(&id).await? {
        Some(tenant) => Ok(Json(tenant)),
        None => Err(not_found(&id)),
    }
}

/// Creates a tenant. The job counts and fees may be left out (0): the original
/// service's clients send `{"tenantID","industry","revenu","employees"}`.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = TenantJson,
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created; `Location` names it", body = TenantJson),
        (status = 400, description = "Invalid fields, each named"),
        (status = 401, description = "No or a wrong `x-api-key`"),
        (status = 409, description = "The tenant exists"),
    ))]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let tenant = Tenant::from_new_json(&parse_body(&headers, &body)?).map_err(invalid)?;
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

/// Replaces (or creates) a tenant: every field is needed.
#[utoipa::path(put, path = "/api/v1/tenants/{tenantID}", tag = "tenants", request_body = TenantJson,
    params(("tenantID" = String, Path, description = "The tenant's id")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Replaced", body = TenantJson),
        (status = 201, description = "Created", body = TenantJson),
        (status = 400, description = "Invalid fields, each named"),
        (status = 401, description = "No or a wrong `x-api-key`"),
    ))]
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

/// Deletes a tenant.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenantID}", tag = "tenants",
    params(("tenantID" = String, Path, description = "The tenant's id")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No or a wrong `x-api-key`"),
        (status = 404, description = "No such tenant"),
    ))]
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

/// The service's name, version, schema version and database.
#[utoipa::path(get, path = "/api/v1/version", tag = "service",
    responses((status = 200, description = "`{name, version, schema, database}`")))]
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

/// Quarkus' liveness answer: the process serves.
#[utoipa::path(get, path = "/q/health/live", tag = "service",
    responses((status = 200, description = "`{\"status\":\"UP\",\"checks\":[]}`")))]
async fn live() -> Json<Value> {
    Json(json!({"status": "UP", "checks": []}))
}

/// Quarkus' readiness answer (also `/q/health`): UP once seeded with the database
/// reachable, else 503 DOWN with the check that failed.
#[utoipa::path(get, path = "/q/health/ready", tag = "service",
    responses(
        (status = 200, description = "`{\"status\":\"UP\",\"checks\":[…]}`"),
        (status = 503, description = "`{\"status\":\"DOWN\",\"checks\":[…]}`"),
    ))]
async fn quarkus_ready(State(state): State<AppState>) -> Response {
    let seeded = state.ready.load(std::sync::atomic::Ordering::Acquire);
    let database = seeded && state.db.ping().await;
    let word = |up: bool| if up { "UP" } else { "DOWN" };
    let body = json!({
        "status": word(seeded && database),
        "checks": [
            {"name": "seed", "status": word(seeded)},
            {"name": "database", "status": word(database)},
        ],
    });
    let status = if seeded && database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The OpenAPI document of this API, generated from its handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "tenantflow tenant-manager", description = "Tenants of the SaaS platform: the TenantManager API, compatible with the original service's clients."),
    paths(list, count, fetch, create, replace, remove, version, live, quarkus_ready,
        healthz, ready, metrics, openapi),
    components(schemas(TenantJson)),
    modifiers(&Extras),
)]
pub struct ApiDoc;

/// The `x-api-key` scheme that writes use, and the routes that answer as others do
/// (`/q/health` as `/q/health/ready`, `/q/openapi` as `/openapi.json`).
struct Extras;

impl utoipa::Modify for Extras {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
        for (alias, of, id) in [
            ("/q/health", "/q/health/ready", "quarkus_health"),
            ("/q/openapi", "/openapi.json", "quarkus_openapi"),
        ] {
            if let Some(mut item) = openapi.paths.paths.get(of).cloned() {
                // Operation ids are unique in a document.
                if let Some(get) = item.get.as_mut() {
                    get.operation_id = Some(id.to_owned());
                }
                openapi.paths.paths.insert(alias.to_owned(), item);
            }
        }
    }
}

/// This document (also at `/q/openapi`).
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "OpenAPI 3.1, JSON")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(<ApiDoc as utoipa::OpenApi>::openapi())
}

/// Liveness: `ok`.
#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "`ok`")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: `ready`, or 503 while seeding or without the database.
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses((status = 200, description = "`ready`"), (status = 503, description = "Not ready")))]
async fn ready(State(state): State<AppState>) -> Response {
    if !state.ready.load(std::sync::atomic::Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "seeding\n").into_response()
    } else if state.db.ping().await {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
    }
}

/// Prometheus metrics: requests by route and status, the outbox, the tenant count.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format")))]
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tower::ServiceExt;

    /// Every route of [`router`], with a method it answers.
    const ROUTES: [(&str, &str); 12] = [
        ("GET", "/api/v1/tenants"),
        ("GET", "/api/v1/tenants/count"),
        ("GET", "/api/v1/tenants/{tenantID}"),
        ("GET", "/api/v1/version"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/q/health/live"),
        ("GET", "/q/health/ready"),
        ("GET", "/q/health"),
        ("GET", "/openapi.json"),
        ("GET", "/q/openapi"),
        ("GET", "/metrics"),
    ];

    #[tokio::test]
    async fn the_document_lists_every_route_and_every_listed_route_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("tenants.db").display());
        let db = Db::open(&url, false).await.unwrap();
        let app = router(AppState {
            db,
            api_key: None,
            metrics: Arc::default(),
            outbox_wake: None,
            ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        });
        let doc = serde_json::to_value(<ApiDoc as utoipa::OpenApi>::openapi()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let listed: std::collections::BTreeSet<&str> = paths.keys().map(String::as_str).collect();
        let routes: std::collections::BTreeSet<&str> = ROUTES.iter().map(|(_, p)| *p).collect();
        assert_eq!(listed, routes);
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys() {
                let uri = path.replace("{tenantID}", "comp_4");
                let request = axum::http::Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from("{}"))
                    .unwrap();
                let response = app.clone().oneshot(request).await.unwrap();
                let status = response.status();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                // An unmatched route is a 404 or 405 with an empty body; every answer
                // of the API's own has one.
                assert!(
                    !body.is_empty(),
                    "{method} {uri}: {status} without a body: not routed"
                );
            }
        }
    }
}
