//! The service over HTTP against a real database: SQLite always, PostgreSQL with the
//! feature `postgres-integration-tests` (at `$TENANTFLOW_TEST_POSTGRES_URL`, which
//! `scripts/test.sh` starts).
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tenantflow_tenants::{Service, ServiceConfig};

const KEY: &str = "test-key-123";

struct Running {
    base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(database: String, companies_stream: Option<String>) -> Self {
        let service = Service::start(ServiceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database,
            api_key: Some(KEY.into()),
            companies_stream,
            seed: None,
            seed_overwrite: false,
        })
        .await
        .unwrap();
        let base = format!("http://{}", service.addr);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            service
                .serve(
                    async move {
                        let _ = stopped.await;
                    },
                    |_| {},
                )
                .await
                .unwrap();
        });
        Self {
            base,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap();
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: bool,
    ) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method.parse().unwrap(), url);
        if key {
            request = request.header("x-api-key", KEY);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn tenant(id: &str, job30: i64) -> Value {
    json!({"tenantID": id, "industry": "retail", "revenu": 29080, "employees": 14540,
        "job30": job30, "job90": 13, "monthlyFee": 461.0, "totalFee": 1172.0})
}

/// A tenant as the API returns it: its id also as `companyID`.
fn as_returned(mut tenant: Value) -> Value {
    tenant["companyID"] = tenant["tenantID"].clone();
    tenant
}

/// Every endpoint, validation, auth, paging and concurrent updates, on one database.
async fn exercise(database: String) {
    let s = Running::start(database, None).await;
    // A database left by an earlier run starts empty.
    loop {
        let (_, page) = s
            .send("GET", "/api/v1/tenants?limit=1000", None, false)
            .await;
        let tenants = page.as_array().unwrap().clone();
        if tenants.is_empty() {
            break;
        }
        for t in tenants {
            let path = format!("/api/v1/tenants/{}", t["tenantID"].as_str().unwrap());
            assert_eq!(
                s.send("DELETE", &path, None, true).await.0,
                StatusCode::NO_CONTENT
            );
        }
    }
    // Reads are open; a missing tenant is a 404, not the original's 204.
    assert_eq!(
        s.send("GET", "/api/v1/tenants/comp_4", None, false).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.send("GET", "/api/v1/tenants/count", None, false).await.1,
        json!(0)
    );
    // Writes need the key.
    let (status, body) = s
        .send("POST", "/api/v1/tenants", Some(tenant("comp_4", 4)), false)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let mut wrong = s
        .http
        .post(format!("{}/api/v1/tenants", s.base))
        .header("x-api-key", "nope");
    wrong = wrong.json(&tenant("comp_4", 4));
    assert_eq!(
        wrong.send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Ids that are paths of the API are refused, saying why.
    for (method, path, id) in [
        ("POST", "/api/v1/tenants", "count"),
        ("POST", "/api/v1/tenants", "version"),
        ("PUT", "/api/v1/tenants/version", "version"),
    ] {
        let (status, body) = s.send(method, path, Some(tenant(id, 1)), true).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {body}");
        assert!(
            body["fields"][0]["expected"]
                .as_str()
                .unwrap()
                .contains("paths of the TenantManager's API"),
            "{body}"
        );
    }
    // Create, then a duplicate.
    let (status, body) = s
        .send("POST", "/api/v1/tenants", Some(tenant("comp_4", 4)), true)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, as_returned(tenant("comp_4", 4)));
    assert_eq!(
        s.send("POST", "/api/v1/tenants", Some(tenant("comp_4", 5)), true)
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        s.send("GET", "/api/v1/tenants/comp_4", None, false).await.1,
        as_returned(tenant("comp_4", 4))
    );
    // The original JSON: `employee`, `companyID`.
    let original = json!({"companyID":"comp_9","revenu":99420,"industry":"retail","employee":4635,
        "job30":10,"job90":100,"monthlyFee":400,"totalFee":1200,"riskOfChurn":false});
    assert_eq!(
        s.send("POST", "/api/v1/tenants", Some(original), true)
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.send("GET", "/api/v1/tenants/comp_9", None, false).await.1["employees"],
        4635
    );
    // Validation names each field: a creation may leave the counts and fees out (the
    // original's 4-field body), a replacement may not.
    for (method, path, expected) in [
        ("POST", "/api/v1/tenants", &["revenu", "employees"][..]),
        (
            "PUT",
            "/api/v1/tenants/b",
            &[
                "revenu",
                "employees",
                "job30",
                "job90",
                "monthlyFee",
                "totalFee",
            ][..],
        ),
    ] {
        let (status, body) = s
            .send(
                method,
                path,
                Some(json!({"tenantID":"b","industry":"x","revenu":-3})),
                true,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let fields: Vec<&str> = body["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, expected, "{method}");
        assert_eq!(body["fields"][0]["got"], "-3");
    }
    let raw = s
        .http
        .post(format!("{}/api/v1/tenants", s.base))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let huge = s
        .http
        .post(format!("{}/api/v1/tenants", s.base))
        .header("x-api-key", KEY)
        .header("content-type", "application/json")
        .body(vec![b' '; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = huge.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("65536 bytes"),
        "{body}"
    );
    // The media type is required, and compared case-insensitively.
    let raw_post = |content_type: Option<&'static str>, body: String| {
        let mut request = s
            .http
            .post(format!("{}/api/v1/tenants", s.base))
            .header("x-api-key", KEY)
            .body(body);
        if let Some(t) = content_type {
            request = request.header("content-type", t);
        }
        request.send()
    };
    let t = tenant("comp_ct", 1).to_string();
    let none = raw_post(None, t.clone()).await.unwrap();
    assert_eq!(none.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let text = raw_post(Some("text/plain"), t.clone()).await.unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let upper = raw_post(Some("APPLICATION/JSON; charset=utf-8"), t)
        .await
        .unwrap();
    assert_eq!(upper.status(), StatusCode::CREATED);
    // A repeated key, or one field under two names with two values, is refused.
    let repeated = r#"{"tenantID":"comp_dup","tenantID":"other","industry":"IT","revenu":1,"employees":1,"job30":1,"job90":1,"monthlyFee":1,"totalFee":1}"#;
    let response = raw_post(Some("application/json"), repeated.into())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`tenantID` appears twice"),
        "{body}"
    );
    let (status, body) = s
        .send(
            "POST",
            "/api/v1/tenants",
            Some(
                json!({"tenantID":"comp_alias","companyID":"comp_other","industry":"IT",
                "revenu":1,"employees":1,"job30":1,"job90":1,"monthlyFee":1,"totalFee":1}),
            ),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        s.send("DELETE", "/api/v1/tenants/comp_ct", None, true)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    // PUT persists (the original saved nothing); a body with another id is refused.
    assert_eq!(
        s.send(
            "PUT",
            "/api/v1/tenants/comp_4",
            Some(tenant("comp_4", 40)),
            true
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        s.send("GET", "/api/v1/tenants/comp_4", None, false).await.1["job30"],
        40
    );
    let (status, body) = s
        .send(
            "PUT",
            "/api/v1/tenants/comp_4",
            Some(tenant("comp_5", 1)),
            true,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["fields"][0]["field"], "tenantID");
    assert_eq!(
        s.send(
            "PUT",
            "/api/v1/tenants/comp_7",
            Some(tenant("comp_7", 7)),
            true
        )
        .await
        .0,
        StatusCode::CREATED
    );
    // Paging: 25 more tenants, pages of 10, in id order, nothing twice.
    for i in 0..25 {
        let id = format!("p-{i:03}");
        assert_eq!(
            s.send("POST", "/api/v1/tenants", Some(tenant(&id, i)), true)
                .await
                .0,
            StatusCode::CREATED
        );
    }
    // Pages of 10, each naming the next in its `Link` header.
    let mut seen = Vec::new();
    let mut next = Some("/api/v1/tenants?limit=10".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let response = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        next = response
            .headers()
            .get("link")
            .map(|l| l.to_str().unwrap().to_owned())
            .map(|l| {
                assert!(l.ends_with(">; rel=\"next\""), "{l}");
                l[1..l.find('>').unwrap()].to_owned()
            });
        let page: Value = response.json().await.unwrap();
        seen.extend(
            page.as_array()
                .unwrap()
                .iter()
                .map(|t| t["tenantID"].as_str().unwrap().to_owned()),
        );
        pages += 1;
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted);
    assert_eq!(seen.len(), 28);
    // Without a page asked for, the whole table, as the original service's list.
    let (status, all) = s.send("GET", "/api/v1/tenants", None, false).await;
    assert_eq!(status, StatusCode::OK);
    let all: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenantID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all, seen);
    assert_eq!(
        s.send("GET", "/api/v1/tenants?limit=0", None, false)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.send("GET", "/api/v1/tenants/count", None, false).await.1,
        json!(28)
    );
    // Concurrent updates of one tenant: all succeed, the last write is whole.
    let updates: Vec<_> = (0..32)
        .map(|i| {
            let http = s.http.clone();
            let url = format!("{}/api/v1/tenants/hot", s.base);
            tokio::spawn(async move {
                http.put(url)
                    .header("x-api-key", KEY)
                    .json(&tenant("hot", i))
                    .send()
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for update in updates {
        assert!(update.await.unwrap().is_success());
    }
    let hot = s.send("GET", "/api/v1/tenants/hot", None, false).await.1;
    assert!((0..32).contains(&hot["job30"].as_i64().unwrap()));
    assert_eq!(hot["job90"], 13);
    // Delete.
    assert_eq!(
        s.send("DELETE", "/api/v1/tenants/comp_4", None, false)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.send("DELETE", "/api/v1/tenants/comp_4", None, true)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.send("DELETE", "/api/v1/tenants/comp_4", None, true)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.send("GET", "/api/v1/tenants/comp_4", None, false).await.0,
        StatusCode::NOT_FOUND
    );
    // Version, health, metrics.
    assert_eq!(
        s.send("GET", "/api/v1/version", None, false).await.1["schema"],
        1
    );
    assert_eq!(
        s.send("GET", "/healthz", None, false).await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.send("GET", "/readyz", None, false).await.0,
        StatusCode::OK
    );
    let (_, metrics) = s.send("GET", "/metrics", None, false).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains(
            r#"tenantflow_tm_requests_total{method="POST",route="/api/v1/tenants",status="409"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("tenantflow_tm_tenants 28"), "{metrics}");
    as_the_original_clients_use_it(&s).await;
    s.stop().await;
}

/// The calls of the original Quarkus service's clients: a 4-field creation, the tenant
/// read back by `tenantID`, the list as an array, the count as a number, Quarkus' health.
async fn as_the_original_clients_use_it(s: &Running) {
    let four = json!({"tenantID": "orig-1", "industry": "gov", "revenu": 5000, "employees": 20});
    let (status, created) = s.send("POST", "/api/v1/tenants", Some(four), true).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, read) = s.send("GET", "/api/v1/tenants/orig-1", None, false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        read,
        json!({"tenantID": "orig-1", "companyID": "orig-1", "industry": "gov", "revenu": 5000,
            "employees": 20, "job30": 0, "job90": 0, "monthlyFee": 0.0, "totalFee": 0.0})
    );
    let (_, all) = s.send("GET", "/api/v1/tenants", None, false).await;
    let count = s.send("GET", "/api/v1/tenants/count", None, false).await.1;
    assert_eq!(
        Some(all.as_array().unwrap().len() as u64),
        count.as_u64(),
        "{count}"
    );
    assert!(all.as_array().unwrap().contains(&read));
    let (status, live) = s.send("GET", "/q/health/live", None, false).await;
    assert_eq!((status, &live["status"]), (StatusCode::OK, &json!("UP")));
    let (status, ready) = s.send("GET", "/q/health/ready", None, false).await;
    assert_eq!(
        (status, &ready["status"]),
        (StatusCode::OK, &json!("UP")),
        "{ready}"
    );
    assert_eq!(
        s.send("DELETE", "/api/v1/tenants/orig-1", None, true)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_seeding_tenant_requests_and_readyz_answer_503() {
    use tower::ServiceExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = tenantflow_tenants::db::Db::open(&url, false).await.unwrap();
    let ready = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = tenantflow_tenants::api::router(tenantflow_tenants::api::AppState {
        db,
        api_key: None,
        metrics: Default::default(),
        outbox_wake: None,
        ready: std::sync::Arc::clone(&ready),
    });
    let status = |path: &'static str| {
        let app = app.clone();
        async move {
            let request = axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap();
            let response = app.oneshot(request).await.unwrap();
            let retry = response.headers().get("retry-after").cloned();
            (response.status(), retry)
        }
    };
    let (s, retry) = status("/api/v1/tenants/comp_4").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry.unwrap(), "1");
    assert_eq!(status("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        status("/q/health/ready").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(status("/healthz").await.0, StatusCode::OK);
    assert_eq!(status("/q/health/live").await.0, StatusCode::OK);
    ready.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(
        status("/api/v1/tenants/comp_4").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(status("/readyz").await.0, StatusCode::OK);
    assert_eq!(status("/q/health/ready").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_cannot_be_read_is_a_500_not_a_503() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let s = Running::start(url.clone(), None).await;
    let (status, _) = s
        .send("POST", "/api/v1/tenants", Some(tenant("bad_row", 1)), true)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let pool = sqlx::sqlite::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE tenants SET revenu = 'garbage' WHERE tenant_id = 'bad_row'")
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = s.send("GET", "/api/v1/tenants/bad_row", None, false).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        !body["error"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_api_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["", "  "] {
        let started = Service::start(ServiceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: format!("sqlite://{}", dir.path().join("t.db").display()),
            api_key: Some(key.into()),
            companies_stream: None,
            seed: None,
            seed_overwrite: false,
        })
        .await;
        let Err(err) = started else {
            panic!("an empty key {key:?} was accepted")
        };
        assert!(err.to_string().contains("API key"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_serves_every_endpoint_and_keeps_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tenants.db").display());
    exercise(url.clone()).await;
    // Migrations run once; the data is still there.
    let again = Running::start(url, None).await;
    assert_eq!(
        again
            .send("GET", "/api/v1/tenants/comp_9", None, false)
            .await
            .0,
        StatusCode::OK
    );
    again.stop().await;
}

#[cfg(feature = "postgres-integration-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_serves_every_endpoint() {
    let url = std::env::var("TENANTFLOW_TEST_POSTGRES_URL").expect("TENANTFLOW_TEST_POSTGRES_URL");
    exercise(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_loads_the_original_csv_and_refuses_a_bad_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("seed.db").display());
    let db = tenantflow_tenants::db::Db::open(&url, false).await.unwrap();
    let good = dir.path().join("good.csv");
    let mut text = String::from(
        "Company,Industry,Revenue,Employees,#job30,#job90,MonthlyCharge,TotalCharge,Churn\r\n",
    );
    for i in 0..2500 {
        text.push_str(&format!("comp_{i},travel,9270,4635,3,56,446,1476,1\r\n"));
    }
    std::fs::write(&good, &text).unwrap();
    let seeded = tenantflow_tenants::seed::seed(&db, &good, false)
        .await
        .unwrap();
    assert_eq!(
        (seeded.tenants, seeded.created, seeded.skipped),
        (2500, 2500, 1)
    );
    assert_eq!(db.count().await.unwrap(), 2500);
    assert_eq!(db.get("comp_7").await.unwrap().unwrap().job90, 56);

    // Seeding again keeps what changed through the API, unless asked to overwrite; a
    // file's repeated ids count once; a byte-order mark is no part of the first line.
    let mut changed = db.get("comp_7").await.unwrap().unwrap();
    changed.job90 = 99;
    db.put(&changed).await.unwrap();
    let again = dir.path().join("again.csv");
    std::fs::write(
        &again,
        "\u{feff}comp_7,travel,9270,4635,3,56,446,1476,1\ncomp_7,travel,9270,4635,3,57,446,1476,1\nnew_1,IT,1,1,1,1,1,1\n",
    )
    .unwrap();
    let seeded = tenantflow_tenants::seed::seed(&db, &again, false)
        .await
        .unwrap();
    assert_eq!(
        (seeded.tenants, seeded.created, seeded.kept, seeded.replaced),
        (2, 1, 1, 0)
    );
    assert_eq!(db.get("comp_7").await.unwrap().unwrap().job90, 99);
    let seeded = tenantflow_tenants::seed::seed(&db, &again, true)
        .await
        .unwrap();
    assert_eq!((seeded.created, seeded.replaced), (0, 2));
    assert_eq!(db.get("comp_7").await.unwrap().unwrap().job90, 57);
    let invalid = dir.path().join("invalid.csv");
    std::fs::write(&invalid, b"n9,IT,1,1,1,1,1,1\nn\xff,IT,1,1,1,1,1,1\n").unwrap();
    let error = tenantflow_tenants::seed::seed(&db, &invalid, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("invalid.csv:2") && error.contains("UTF-8"),
        "{error}"
    );

    let bad = dir.path().join("bad.ndjson");
    std::fs::write(
        &bad,
        "{\"tenantID\":\"n1\",\"industry\":\"IT\",\"revenu\":1,\"employees\":1,\"job30\":1,\"job90\":1,\"monthlyFee\":1,\"totalFee\":1}\n\
         {\"type\":\"job\",\"companyID\":\"n1\"}\n\
         {\"tenantID\":\"n2\",\"industry\":\"IT\",\"revenu\":\"lots\"}\n",
    )
    .unwrap();
    let error = tenantflow_tenants::seed::seed(&db, &bad, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("bad.ndjson:3") && error.contains("revenu"),
        "{error}"
    );
    assert!(
        db.get("n1").await.unwrap().is_none(),
        "nothing of a bad file is loaded"
    );
}
