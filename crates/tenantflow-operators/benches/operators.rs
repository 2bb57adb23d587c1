#![allow(clippy::unwrap_used)]
//! The per-record work of a keyed worker: window update, join probe and score.

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tenantflow_core::Company;
use tenantflow_core::record::ProfileFields;
use tenantflow_operators::score::{Features, Model};
use tenantflow_operators::tenant::{JobOutcome, TenantTable};
use tenantflow_operators::window::{DayWindow, Retention};

fn operators(c: &mut Criterion) {
    let model = Model::builtin();
    let mut group = c.benchmark_group("operators");
    group.throughput(Throughput::Elements(1));

    let retention = Retention::default();
    let mut window = DayWindow::default();
    let mut t = 0i64;
    group.bench_function("window_add_in_order", |b| {
        b.iter(|| {
            t += 1;
            window
                .add(black_box(20_000 + t / 50_000), 1, retention)
                .unwrap()
        })
    });

    let features = Features {
        revenu: 1_234_567.0,
        employees: 250.0,
        job30: 15.0,
        job90: 43.0,
        monthly_fee: 450.0,
        total_fee: 9800.0,
    };
    group.bench_function("score", |b| {
        b.iter(|| model.score(black_box(&features), "retail", 0.2))
    });

    let ids: Vec<String> = (0..10_000).map(|i| format!("c-{i:05}")).collect();
    let mut table: TenantTable<()> = TenantTable::new(retention);
    for id in &ids {
        let company = Company {
            company_id: Cow::Borrowed(id),
            profile: ProfileFields {
                industry: Cow::Borrowed("retail"),
                revenu: 1_000_000,
                employees: 100,
                job30: 1,
                job90: 2,
                monthly_fee: 10.0,
                total_fee: 100.0,
            },
        };
        table.upsert(&company, &model, |_| ());
    }
    let mut i = 0usize;
    group.bench_function("join_window_score_10k_tenants", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            match table.process_job(&ids[i], 1, 1_767_225_600_000 + i as i64, &model) {
                JobOutcome::Joined(j) => j.churn_score,
                _ => unreachable!(),
            }
        })
    });
    group.finish();
}

criterion_group!(benches, operators);
criterion_main!(benches);
