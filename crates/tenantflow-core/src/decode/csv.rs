//! Headerless CSV lines of the original system: job events and companies.

use std::borrow::Cow;

use super::{DecodeError, RawRecord, utf8};
use crate::record::Record;

/// Most columns a line may have; more is an error.
const MAX_COLUMNS: usize = 9;

/// First cells that mark a header line (compared case-insensitively).
const HEADER_NAMES: [&str; 4] = ["company_id", "company", "companyid", "tenantid"];

pub(super) fn decode_line(
    line: &[u8],
    first_line: bool,
) -> Result<Option<Record<'_>>, DecodeError> {
    let text = utf8(line)?;
    let mut cells: [Cow<'_, str>; MAX_COLUMNS] = Default::default();
    let count = split(text, &mut cells)?;
    let cells = &cells[..count];
    if first_line && is_header(cells) {
        return Ok(None);
    }
    let mut raw = RawRecord {
        company_id: Some(cells[0].clone()),
        ..RawRecord::default()
    };
    match count {
        3 | 4 => {
            raw.kind = Some(Cow::Borrowed("job"));
            raw.user_id = Some(cells[1].clone());
            raw.nb_jobs = Some(int(&cells[2], "#job_submitted")?);
            if let Some(ts) = cells.get(3).filter(|c| !c.is_empty()) {
                raw.creation_date = Some(int(ts, "timestamp")?);
            }
        }
        8 | 9 => {
            raw.kind = Some(Cow::Borrowed("company"));
            raw.industry = Some(cells[1].clone());
            raw.revenu = Some(int(&cells[2], "revenu")?);
            raw.employees = Some(int(&cells[3], "employees")?);
            raw.job30 = Some(int(&cells[4], "job30")?);
            raw.job90 = Some(int(&cells[5], "job90")?);
            raw.monthly_fee = Some(float(&cells[6], "monthlyFee")?);
            raw.total_fee = Some(float(&cells[7], "totalFee")?);
        }
        n => {
            return Err(DecodeError::Csv(format!(
                "expected 3 or 4 columns (job event) or 8 or 9 (company), got {n}"
            )));
        }
    }
    raw.into_record(super::DefaultKind::Infer).map(Some)
}

fn is_header(cells: &[Cow<'_, str>]) -> bool {
    let first = cells[0].as_ref();
    HEADER_NAMES.iter().any(|h| first.eq_ignore_ascii_case(h))
        && cells.get(2).is_some_and(|c| c.parse::<f64>().is_err())
}

/// Splits RFC 4180 cells, trimming spaces around unquoted cells. Returns the count.
fn split<'a>(text: &'a str, cells: &mut [Cow<'a, str>; MAX_COLUMNS]) -> Result<usize, DecodeError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut n = 0;
    loop {
        if n == MAX_COLUMNS {
            return Err(DecodeError::Csv(format!("more than {MAX_COLUMNS} columns")));
        }
        while bytes.get(i) == Some(&b' ') {
            i += 1;
        }
        if bytes.get(i) == Some(&b'"') {
            let mut value = String::new();
            let mut j = i + 1;
            loop {
                match bytes.get(j) {
                    None => return Err(DecodeError::Csv("unterminated quoted cell".into())),
                    Some(b'"') if bytes.get(j + 1) == Some(&b'"') => {
                        value.push('"');
                        j += 2;
                    }
                    Some(b'"') => break,
                    Some(_) => {
                        let end = memchr::memchr(b'"', &bytes[j..]).map_or(bytes.len(), |k| j + k);
                        value.push_str(&text[j..end]);
                        j = end;
                    }
                }
            }
            cells[n] = Cow::Owned(value);
            n += 1;
            i = j + 1;
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
            match bytes.get(i) {
                None => return Ok(n),
                Some(b',') => i += 1,
                Some(_) => return Err(DecodeError::Csv("text after a quoted cell".into())),
            }
        } else {
            let end = memchr::memchr(b',', &bytes[i..]).map_or(bytes.len(), |k| i + k);
            cells[n] = Cow::Borrowed(text[i..end].trim_end_matches(' '));
            n += 1;
            if end == bytes.len() {
                return Ok(n);
            }
            i = end + 1;
        }
    }
}

/// An integer cell. Rust's parser takes a leading `+`; JSON and the original producers
/// never write one, so it is refused.
fn int(cell: &str, field: &str) -> Result<i64, DecodeError> {
    let parsed = if cell.starts_with('+') {
        None
    } else {
        cell.parse().ok()
    };
    parsed.ok_or_else(|| {
        DecodeError::Csv(format!(
            "column `{field}`: expected an integer, got `{cell}`"
        ))
    })
}

/// A number cell, without a leading `+` either.
fn float(cell: &str, field: &str) -> Result<f64, DecodeError> {
    let parsed = if cell.starts_with('+') {
        None
    } else {
        cell.parse().ok()
    };
    parsed.ok_or_else(|| {
        DecodeError::Csv(format!("column `{field}`: expected a number, got `{cell}`"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn decode_line_first(line: &[u8]) -> Result<Option<Record<'_>>, DecodeError> {
        decode_line(line, true)
    }

    #[test]
    fn only_a_first_line_is_a_header_and_numbers_have_no_plus() {
        assert_eq!(decode_line(b"company,retail,x", true).unwrap(), None);
        let err = decode_line(b"company,retail,x", false).unwrap_err();
        assert!(err.to_string().contains("#job_submitted"), "{err}");
        let err = decode_line(b"comp_4,user_1,+5", true).unwrap_err();
        assert!(err.to_string().contains("`+5`"), "{err}");
        let err = decode_line(b"comp_0,travel,9270,4635,3,56,+446,1476", false).unwrap_err();
        assert!(err.to_string().contains("monthlyFee"), "{err}");
    }

    #[test]
    fn job_and_company_lines_by_column_count() {
        let Some(Record::Job(job)) = decode_line_first(b"comp_4,user_1,1").unwrap() else {
            panic!("not a job")
        };
        assert_eq!(
            (job.company_id.as_ref(), job.nb_jobs, job.creation_date),
            ("comp_4", 1, None)
        );
        let Some(Record::Company(c)) =
            decode_line_first(b"comp_0,travel,9270,4635,3,56,446,1476").unwrap()
        else {
            panic!("not a company")
        };
        assert_eq!(c.profile.monthly_fee, 446.0);
        assert_eq!(c.profile.job90, 56);
        let Some(Record::Job(job)) = decode_line_first(b"\"a,b\", u , 2 ,17").unwrap() else {
            panic!("not a job")
        };
        assert_eq!(
            (job.company_id.as_ref(), job.user_id.as_ref()),
            ("a,b", "u")
        );
        assert_eq!(job.creation_date, Some(17));
    }

    #[test]
    fn header_lines_are_skipped() {
        assert_eq!(
            decode_line_first(
                b"company_id, industry, revenu, employees, job30, job90, monthlyFee, totalFee"
            )
            .unwrap(),
            None
        );
        assert_eq!(
            decode_line_first(
                b"Company,Industry,Revenue,Employees,#job30,#job90,MonthlyCharge,TotalCharge,Churn"
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let err = decode_line_first(b"comp_4,user_1,-1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `nbJobs` must be an integer from 0 to 1000000, got -1"
        );
        let err = decode_line_first(b"comp_4,user_1").unwrap_err();
        assert!(err.to_string().contains("got 2"), "{err}");
        let err = decode_line_first(b"comp_4,user_1,x").unwrap_err();
        assert!(err.to_string().contains("#job_submitted"), "{err}");
    }
}
