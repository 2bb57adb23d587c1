#![allow(clippy::unwrap_used)]
//! Decoding throughput: the scanner's fast path and the serde fallback.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tenantflow_core::decode::{Decoder, DefaultKind};

const JOB: &[u8] = br#"{"type":"job","companyID":"c-00042","userID":"u-01234","nbJobs":3,"creationDate":1767225601555}"#;
const JOB_ESCAPED: &[u8] = br#"{"type":"job","companyID":"c-0004\u0032","userID":"u-01234","nbJobs":3,"creationDate":1767225601555}"#;
const COMPANY: &[u8] = br#"{"type":"company","companyID":"c-00042","industry":"retail","revenu":1234567,"employees":250,"job30":12,"job90":40,"monthlyFee":450.00,"totalFee":9800.00}"#;

fn decode(c: &mut Criterion) {
    let decoder = Decoder::new(DefaultKind::Infer);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("job_scanner", |b| {
        b.iter(|| decoder.decode_json(black_box(JOB)).unwrap())
    });
    group.bench_function("job_serde_fallback", |b| {
        b.iter(|| decoder.decode_json(black_box(JOB_ESCAPED)).unwrap())
    });
    group.bench_function("company_scanner", |b| {
        b.iter(|| decoder.decode_json(black_box(COMPANY)).unwrap())
    });
    group.bench_function("csv_job", |b| {
        b.iter(|| {
            decoder
                .decode_csv(black_box(b"comp_4,user_1,1,1767225601555"), false)
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
