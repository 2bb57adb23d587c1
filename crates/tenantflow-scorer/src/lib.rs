//! `tenantflow scorer`: a churn model served over HTTP.
//!
//! - SageMaker's container contract: `GET /ping`, `POST /invocations` with `text/csv`
//!   (one row per line, columns in [`rows::COLUMNS`] order) or `application/json`
//!   (`{"instances":[…]}`, an array, or one object), answering
//!   `{"predictions":[{"score":…,"predicted_label":0|1},…],"model_version":…}` in row
//!   order.
//! - The SageMaker runtime API's path, `POST /endpoints/{name}/invocations`, so that a
//!   SageMaker client can be pointed at this server.
//! - The original API Gateway route, `POST /assessChurn`: one company in (`employee` or
//!   `employees`), `{"churn":bool,"score":f64,"model_version":…}` out.
//!
//! A bad row gets a 400 naming the row and the field.

pub mod rows;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tenantflow_operators::score::Model;
use tokio::net::TcpListener;

use crate::rows::{Row, RowError};

/// Largest request body: 6 MB, SageMaker's own limit for real-time invocations.
pub const MAX_BODY_BYTES: usize = 6 << 20;

/// Scoring requests served at once by default: with bodies of up to 6 MB, at most
/// about 50 MB of bodies in memory.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;

#[derive(Clone)]
struct AppState {
    model: Arc<Model>,
    /// The model's version as a JSON string.
    version_json: Arc<str>,
    rows: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    /// One permit per scoring request served at once.
    permits: Arc<tokio::sync::Semaphore>,
    max_in_flight: usize,
    /// Requests turned away for want of a permit.
    refused: Arc<AtomicU64>,
}

/// The routes serving `model`, at most `max_in_flight` scoring requests at once (one
/// more gets a 503 with `Retry-After` before its body is read, which clients retry).
pub fn router(model: Model, max_in_flight: usize) -> Router {
    let max_in_flight = max_in_flight.max(1);
    let state = AppState {
        version_json: Value::from(model.version()).to_string().into(),
        model: Arc::new(model),
        rows: Arc::default(),
        requests: Arc::default(),
        permits: Arc::new(tokio::sync::Semaphore::new(max_in_flight)),
        max_in_flight,
        refused: Arc::default(),
    };
    Router::new()
        .route("/ping", get(|| async { StatusCode::OK }))
        .route("/invocations", post(invocations))
        .route("/endpoints/{name}/invocations", post(invocations))
        .route("/assessChurn", post(assess_churn))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), bounded))
        .with_state(state)
}

/// Serves a scoring request only with a permit, taken before its body is read.
async fn bounded(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let Ok(_permit) = Arc::clone(&state.permits).try_acquire_owned() else {
        state.refused.fetch_add(1, Ordering::Relaxed);
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "too many scoring requests at once; try again"})),
        )
            .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return response;
    };
    next.run(request).await
}

fn bad_request(error: RowError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error.to_string(), "row": error.row, "field": error.field})),
    )
        .into_response()
}

fn score(model: &Model, row: &Row) -> f64 {
    model.score(
        &row.features,
        &row.industry,
        model.industry_weight(&row.industry),
    )
}

async fn invocations(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/csv")
        .to_ascii_lowercase();
    let rows = if content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => rows::parse_json(&value),
            Err(e) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": format!("the body is not JSON: {e}")})),
                )
                    .into_response();
            }
        }
    } else if content_type.starts_with("text/csv") {
        match std::str::from_utf8(&body) {
            Ok(text) => rows::parse_csv(text),
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "the body is not UTF-8"})),
                )
                    .into_response();
            }
        }
    } else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({"error": format!("expected text/csv or application/json, got {content_type}")})),
        )
            .into_response();
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return bad_request(e),
    };
    state.rows.fetch_add(rows.len() as u64, Ordering::Relaxed);
    // Written directly: a tree of JSON values per row costs more than the scoring.
    let mut out = String::with_capacity(32 + rows.len() * 48);
    let mut number = ryu::Buffer::new();
    out.push_str("{\"predictions\":[");
    for (i, row) in rows.iter().enumerate() {
        let s = score(&state.model, row);
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"score\":");
        // The shortest form that reads back exactly; NaN (from infinite terms) is null.
        out.push_str(if s.is_finite() {
            number.format_finite(s)
        } else {
            "null"
        });
        out.push_str(if state.model.is_risk(s) {
            ",\"predicted_label\":1}"
        } else {
            ",\"predicted_label\":0}"
        });
    }
    out.push_str("],\"model_version\":");
    out.push_str(&state.version_json);
    out.push('}');
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

async fn assess_churn(State(state): State<AppState>, body: Bytes) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("the body is not JSON: {e}")})),
            )
                .into_response();
        }
    };
    match rows::from_object(&value, 1) {
        Ok(row) => {
            state.rows.fetch_add(1, Ordering::Relaxed);
            let s = score(&state.model, &row);
            Json(json!({"churn": state.model.is_risk(s), "score": s,
                "model_version": state.model.version()}))
            .into_response()
        }
        Err(e) => bad_request(e),
    }
}

async fn metrics(State(state): State<AppState>) -> String {
    format!(
        "# TYPE tenantflow_scorer_requests_total counter\ntenantflow_scorer_requests_total {}\n\
         # TYPE tenantflow_scorer_rows_total counter\ntenantflow_scorer_rows_total {}\n\
         # TYPE tenantflow_scorer_requests_in_flight gauge\ntenantflow_scorer_requests_in_flight {}\n\
         # TYPE tenantflow_scorer_requests_refused_total counter\ntenantflow_scorer_requests_refused_total {}\n",
        state.requests.load(Ordering::Relaxed),
        state.rows.load(Ordering::Relaxed),
        state.max_in_flight - state.permits.available_permits(),
        state.refused.load(Ordering::Relaxed)
    )
}

/// Serves `model` on `listen` until `shutdown` completes; `ready` gets the bound address.
///
/// # Errors
/// The address cannot be bound, or the server fails.
pub async fn serve(
    model: Model,
    listen: SocketAddr,
    max_in_flight: usize,
    ready: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    ready(listener.local_addr()?);
    axum::serve(listener, router(model, max_in_flight))
        .with_graceful_shutdown(shutdown)
        .await
}
