#![allow(clippy::unwrap_used)]
//! Encoding throughput of result rows.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tenantflow_core::{CompanyProfile, ResultRow};
use tenantflow_sinks::encoding::Format;

fn encode(c: &mut Criterion) {
    let profile = CompanyProfile {
        industry: "retail".into(),
        revenu: 1_234_567,
        employees: 250,
        job30: 12,
        job90: 40,
        monthly_fee: 450.0,
        total_fee: 9800.0,
    };
    let row = ResultRow {
        company_id: "c-00042",
        profile: &profile,
        job30: 15,
        job90: 43,
        risk_of_churn: false,
        churn_score: Some(0.2734510917391542),
        user_id: "u-01234",
        nb_jobs: 3,
        creation_date: 1_767_225_601_555,
        model_version: None,
    };
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for format in [Format::Ndjson, Format::Csv] {
        let fragments = format.profile_fragments(row.company_id, &profile);
        let mut out = Vec::with_capacity(1 << 20);
        group.bench_function(format.extension(), |b| {
            b.iter(|| {
                if out.len() > (1 << 20) - 512 {
                    out.clear();
                }
                format.encode_row(&mut out, black_box(&row), &fragments);
            })
        });
    }
    group.bench_function("ndjson_profile_fragments", |b| {
        b.iter(|| Format::Ndjson.profile_fragments(black_box("c-00042"), &profile))
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
