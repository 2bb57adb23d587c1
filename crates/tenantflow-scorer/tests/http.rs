//! The scorer over HTTP: every route gives the embedded model's scores.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use serde_json::{Value, json};
use tenantflow_operators::score::{Features, Model};

async fn start() -> (String, tokio::sync::oneshot::Sender<()>) {
    start_with(tenantflow_scorer::DEFAULT_MAX_IN_FLIGHT).await
}

async fn start_with(max_in_flight: usize) -> (String, tokio::sync::oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tenantflow_scorer::serve(
            Model::builtin(),
            SocketAddr::from(([127, 0, 0, 1], 0)),
            max_in_flight,
            |addr| {
                let _ = addr_tx.send(addr);
            },
            async move {
                let _ = stop_rx.await;
            },
        )
        .await
        .unwrap();
    });
    (format!("http://{}", addr_rx.await.unwrap()), stop_tx)
}

fn embedded(industry: &str, x: [f64; 6]) -> f64 {
    let model = Model::builtin();
    let f = Features {
        revenu: x[0],
        employees: x[1],
        job30: x[2],
        job90: x[3],
        monthly_fee: x[4],
        total_fee: x[5],
    };
    model.score(&f, industry, model.industry_weight(industry))
}

#[tokio::test]
async fn requests_past_the_in_flight_bound_get_503_before_their_body_is_read() {
    use tokio::io::AsyncWriteExt;
    let (base, _stop) = start_with(2).await;
    let addr = base.strip_prefix("http://").unwrap().to_owned();
    // Two requests whose bodies never come hold both permits.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(
            b"POST /invocations HTTP/1.1\r\nhost: x\r\ncontent-type: text/csv\r\ncontent-length: 5000000\r\n\r\n",
        )
        .await
        .unwrap();
        stalled.push(conn);
    }
    let http = reqwest::Client::new();
    let in_flight = || async {
        let text = http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("tenantflow_scorer_requests_in_flight "))
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    // Bounded wait for the server to take both requests in.
    let mut taken = 0;
    for _ in 0..1000 {
        taken = in_flight().await;
        if taken == 2 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(taken, 2);
    let refused = http
        .post(format!("{base}/invocations"))
        .header("content-type", "text/csv")
        .body("retail,1,1,1,1,1,1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    drop(stalled);
    // Once they are gone, requests are served again.
    let mut status = 0;
    for _ in 0..1000 {
        if in_flight().await == 0 {
            status = http
                .post(format!("{base}/invocations"))
                .header("content-type", "text/csv")
                .body("retail,1,1,1,1,1,1")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn every_route_scores_as_the_embedded_model() {
    let (base, _stop) = start().await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/ping"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let rows = [
        ("retail", [29080.0, 14540.0, 4.0, 13.0, 461.0, 1172.0]),
        (
            "finance",
            [9_000_000.0, 800.0, 120.0, 300.0, 900.0, 30_000.0],
        ),
    ];
    let csv: String = rows
        .iter()
        .map(|(i, x)| {
            format!(
                "{i},{},{},{},{},{},{}\n",
                x[0], x[1], x[2], x[3], x[4], x[5]
            )
        })
        .collect();
    for path in ["/invocations", "/endpoints/churn/invocations"] {
        let answer: Value = http
            .post(format!("{base}{path}"))
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (k, (industry, x)) in rows.iter().enumerate() {
            let want = embedded(industry, *x);
            assert_eq!(answer["predictions"][k]["score"].as_f64().unwrap(), want);
            assert_eq!(
                answer["predictions"][k]["predicted_label"],
                u8::from(want >= 0.5)
            );
        }
    }
    let instances: Vec<Value> = rows
        .iter()
        .map(|(i, x)| {
            json!({"industry": i, "revenu": x[0], "employees": x[1], "job30": x[2],
            "job90": x[3], "monthlyFee": x[4], "totalFee": x[5]})
        })
        .collect();
    let answer: Value = http
        .post(format!("{base}/invocations"))
        .json(&json!({ "instances": instances }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["predictions"][1]["score"].as_f64().unwrap(),
        embedded(rows[1].0, rows[1].1)
    );
    // The original route, with the original client's `employee`.
    let company = json!({"companyID":"comp_4","revenu":29080,"industry":"retail","employee":14540,
        "job30":4,"job90":13,"monthlyFee":461,"totalFee":1172,"riskOfChurn":false});
    let answer: Value = http
        .post(format!("{base}/assessChurn"))
        .json(&company)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let want = embedded(rows[0].0, rows[0].1);
    assert_eq!(answer["score"].as_f64().unwrap(), want);
    assert_eq!(answer["churn"], want >= 0.5);
    // A bad row is a 400 that names it.
    let bad = http
        .post(format!("{base}/invocations"))
        .header("content-type", "text/csv")
        .body("retail,1,2,3,4,5,6\nIT,1,2,three,4,5,6\n")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["row"], 2);
    assert_eq!(body["field"], "job30");
    let wrong_type = http
        .post(format!("{base}/invocations"))
        .header("content-type", "application/xml")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_type.status(), 415);
}
