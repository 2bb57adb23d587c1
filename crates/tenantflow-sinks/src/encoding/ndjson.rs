//! Results as NDJSON, fields in the order of DESIGN.md §1.

use tenantflow_core::{CompanyProfile, ResultRow};

use super::{ProfileFragments, push_f64, push_int};

pub(super) fn profile_fragments(company_id: &str, p: &CompanyProfile) -> ProfileFragments {
    let mut head = Vec::with_capacity(96);
    head.extend_from_slice(b"{\"companyID\":");
    push_json_str(&mut head, company_id);
    head.extend_from_slice(b",\"industry\":");
    push_json_str(&mut head, &p.industry);
    head.extend_from_slice(b",\"revenu\":");
    push_int(&mut head, p.revenu);
    head.extend_from_slice(b",\"employees\":");
    push_int(&mut head, p.employees);
    head.extend_from_slice(b",\"job30\":");
    let mut middle = Vec::with_capacity(64);
    middle.extend_from_slice(b",\"monthlyFee\":");
    push_f64(&mut middle, p.monthly_fee);
    middle.extend_from_slice(b",\"totalFee\":");
    push_f64(&mut middle, p.total_fee);
    middle.extend_from_slice(b",\"riskOfChurn\":");
    ProfileFragments::new(&head, &middle)
}

pub(super) fn encode_row(out: &mut Vec<u8>, row: &ResultRow<'_>, fragments: &ProfileFragments) {
    out.extend_from_slice(fragments.head());
    push_int(out, row.job30);
    out.extend_from_slice(b",\"job90\":");
    push_int(out, row.job90);
    out.extend_from_slice(fragments.middle());
    out.extend_from_slice(if row.risk_of_churn { b"true" } else { b"false" });
    out.extend_from_slice(b",\"churnScore\":");
    match row.churn_score {
        Some(score) => push_f64(out, score),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"userID\":");
    push_json_str(out, row.user_id);
    out.extend_from_slice(b",\"nbJobs\":");
    push_int(out, row.nb_jobs);
    out.extend_from_slice(b",\"creationDate\":");
    push_int(out, row.creation_date);
    if let Some(version) = row.model_version {
        out.extend_from_slice(b",\"modelVersion\":");
        push_json_str(out, version);
    }
    out.extend_from_slice(b"}\n");
}

/// Appends `s` as a JSON string. Strings without characters to escape (all of them, in
/// practice) are copied in one go.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}
