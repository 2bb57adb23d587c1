//! The admin server's routes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tenantflow_core::DeadLetterReason;
use tenantflow_runtime::status::QueryError;
use tenantflow_runtime::{Metrics, RiskFilter, TenantView};

use crate::exporter;
use crate::series::{Sample, Series};

/// How long a question about tenants waits for the workers.
const QUERY_WAIT: Duration = Duration::from_secs(5);
/// `GET /tenants` lists at most this many.
pub const MAX_LIMIT: usize = 1000;
/// `GET /tenants` lists this many by default.
const DEFAULT_LIMIT: usize = 50;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) series: Arc<Series>,
}

/// The admin routes.
pub(crate) fn router(state: AdminState) -> axum::Router {
    axum::Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/tenants", get(tenants))
        .route("/tenants/{company_id}", get(tenant))
        .route("/api/series", get(series))
        .route("/api/overview", get(overview))
        .with_state(state)
}

/// The dashboard: one page, its script and styles inline, charts drawn as SVG.
async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard/index.html"))
}

async fn metrics(State(state): State<AdminState>) -> Response {
    match exporter::render(&state.registry) {
        Ok(text) => ([(header::CONTENT_TYPE, exporter::CONTENT_TYPE)], text).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed",
        ),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let status = &state.metrics.status;
    let ready = status.ready();
    let body = Json(json!({
        "ready": ready,
        "phase": status.phase().name(),
        "failure": status.failure(),
    }));
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body).into_response()
}

/// A tenant as the API shows it: field names as in the results.
#[derive(Debug, Serialize)]
pub(crate) struct TenantJson {
    #[serde(rename = "companyID")]
    company_id: String,
    profile: ProfileJson,
    job30: i64,
    job90: i64,
    #[serde(rename = "churnScore")]
    churn_score: Option<f64>,
    #[serde(rename = "riskOfChurn")]
    risk_of_churn: Option<bool>,
    #[serde(rename = "lastEventTime")]
    last_event_time: Option<i64>,
    events: u64,
}

/// The profile as the results name its fields (`job30`/`job90` are its baselines).
#[derive(Debug, Serialize)]
struct ProfileJson {
    industry: String,
    revenu: i64,
    employees: i64,
    job30: i64,
    job90: i64,
    #[serde(rename = "monthlyFee")]
    monthly_fee: f64,
    #[serde(rename = "totalFee")]
    total_fee: f64,
}

impl From<TenantView> for TenantJson {
    fn from(v: TenantView) -> Self {
        let p = v.profile;
        Self {
            company_id: v.company_id,
            profile: ProfileJson {
                industry: p.industry.into(),
                revenu: p.revenu,
                employees: p.employees,
                job30: p.job30,
                job90: p.job90,
                monthly_fee: p.monthly_fee,
                total_fee: p.total_fee,
            },
            job30: v.job30,
            job90: v.job90,
            churn_score: v.churn_score,
            risk_of_churn: v.risk_of_churn,
            last_event_time: v.last_event_ms,
            events: v.events,
        }
    }
}

async fn tenant(State(state): State<AdminState>, Path(company_id): Path<String>) -> Response {
    match state.metrics.status.tenant(&company_id, QUERY_WAIT).await {
        Ok(Some(view)) => Json(TenantJson::from(view)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            &format!("no tenant `{company_id}` in the job's state"),
        ),
        Err(e) => query_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct TenantsQuery {
    risk: Option<String>,
    limit: Option<String>,
}

async fn tenants(State(state): State<AdminState>, Query(q): Query<TenantsQuery>) -> Response {
    let risk = match q.risk.as_deref() {
        None | Some("any") => RiskFilter::Any,
        Some("high") => RiskFilter::High,
        Some("low") => RiskFilter::Low,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("`risk` must be high, low or any, not `{other}`"),
            );
        }
    };
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("`limit` must be a whole number from 1 to {MAX_LIMIT}"),
            );
        }
    };
    match state.metrics.status.top(risk, limit, QUERY_WAIT).await {
        Ok(views) => {
            let tenants: Vec<TenantJson> = views.into_iter().map(TenantJson::from).collect();
            Json(json!({ "tenants": tenants })).into_response()
        }
        Err(e) => query_error(e),
    }
}

async fn series(State(state): State<AdminState>) -> Json<serde_json::Value> {
    Json(json!({
        "intervalMs": crate::series::SAMPLE_EVERY.as_millis() as u64,
        "samples": state.series.read(),
    }))
}

/// What the dashboard shows besides its time series.
async fn overview(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let metrics = &state.metrics;
    let status = &metrics.status;
    let m = metrics.snapshot();
    let dead_letters: BTreeMap<&str, u64> = DeadLetterReason::ALL
        .iter()
        .map(|r| (r.as_str(), m.dead_letters[r.index()]))
        .collect();
    // Tenants and industries come from the workers; while none runs, the rest is
    // still worth showing.
    let at_risk = status.top(RiskFilter::High, 10, QUERY_WAIT).await;
    let industries = status.industries(QUERY_WAIT).await;
    let at_risk: Vec<TenantJson> = at_risk
        .unwrap_or_default()
        .into_iter()
        .map(TenantJson::from)
        .collect();
    let industries: Vec<_> = industries
        .unwrap_or_default()
        .into_iter()
        .map(|(industry, c)| {
            json!({
                "industry": industry,
                "tenants": c.tenants,
                "atRisk": c.at_risk,
                "churnRate": c.at_risk as f64 / c.tenants.max(1) as f64,
            })
        })
        .collect();
    Json(json!({
        "phase": status.phase().name(),
        "ready": status.ready(),
        "now": Sample::take(metrics, tenantflow_core::clock::now_ms()),
        "deadLetters": dead_letters,
        "atRisk": at_risk,
        "industries": industries,
        "leases": status.leases().map(|(worker, shards)| json!({
            "worker": worker,
            "shards": shards,
        })),
        "checkpoint": status.last_checkpoint().map(|c| json!({
            "number": c.number,
            "durationMs": c.duration.as_millis() as u64,
            "bytes": c.bytes,
            "completedMs": c.completed_ms,
        })),
    }))
}

fn query_error(e: QueryError) -> Response {
    let code = match e {
        // With leases, another worker holds the tenant's shard: not here.
        QueryError::NotHeld => StatusCode::NOT_FOUND,
        QueryError::NotRunning | QueryError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(code, &e.to_string())
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}
