//! Results as the original system's headerless CSV:
//! `companyID,industry,revenu,employees,job30,job90,monthlyFee,totalFee,riskOfChurn`,
//! then `modelVersion` when results carry it.

use tenantflow_core::{CompanyProfile, ResultRow};

use super::{ProfileFragments, push_f64, push_int};

pub(super) fn profile_fragments(company_id: &str, p: &CompanyProfile) -> ProfileFragments {
    let mut head = Vec::with_capacity(64);
    push_csv_cell(&mut head, company_id);
    head.push(b',');
    push_csv_cell(&mut head, &p.industry);
    head.push(b',');
    push_int(&mut head, p.revenu);
    head.push(b',');
    push_int(&mut head, p.employees);
    head.push(b',');
    let mut middle = Vec::with_capacity(32);
    middle.push(b',');
    push_f64(&mut middle, p.monthly_fee);
    middle.push(b',');
    push_f64(&mut middle, p.total_fee);
    middle.push(b',');
    ProfileFragments::new(&head, &middle)
}

pub(super) fn encode_row(out: &mut Vec<u8>, row: &ResultRow<'_>, fragments: &ProfileFragments) {
    out.extend_from_slice(fragments.head());
    push_int(out, row.job30);
    out.push(b',');
    push_int(out, row.job90);
    out.extend_from_slice(fragments.middle());
    out.extend_from_slice(if row.risk_of_churn { b"true" } else { b"false" });
    if let Some(version) = row.model_version {
        out.push(b',');
        push_csv_cell(out, version);
    }
    out.push(b'\n');
}

/// RFC 4180: a cell with a comma, quote or line break is quoted, quotes doubled.
pub(crate) fn push_csv_cell(out: &mut Vec<u8>, s: &str) {
    if !s.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}
