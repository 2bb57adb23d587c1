//! Result encodings.

pub(crate) mod csv;
mod ndjson;
pub mod parquet;

use tenantflow_core::{CompanyProfile, ResultRow};

/// The output format of results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line, all result fields in order.
    #[default]
    Ndjson,
    /// The original system's 9 headerless columns:
    /// `companyID,industry,revenu,employees,job30,job90,monthlyFee,totalFee,riskOfChurn`.
    Csv,
    /// Parquet with typed columns, Snappy-compressed.
    Parquet,
}

impl Format {
    /// The file extension of the format.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }

    /// Pre-encodes what of a row depends on the profile only.
    pub fn profile_fragments(self, company_id: &str, profile: &CompanyProfile) -> ProfileFragments {
        match self {
            Format::Ndjson => ndjson::profile_fragments(company_id, profile),
            Format::Csv => csv::profile_fragments(company_id, profile),
            Format::Parquet => ProfileFragments::default(),
        }
    }

    /// Appends one encoded row to `out`. Only for the row formats: Parquet rows go
    /// through [`parquet::ParquetPart`].
    pub fn encode_row(self, out: &mut Vec<u8>, row: &ResultRow<'_>, fragments: &ProfileFragments) {
        match self {
            Format::Ndjson => ndjson::encode_row(out, row, fragments),
            Format::Csv => csv::encode_row(out, row, fragments),
            Format::Parquet => unreachable!("Parquet rows are columnar, not encoded one by one"),
        }
    }
}

/// The bytes of a row that depend only on the tenant's profile: those before `job30`
/// and those between `job90` and the per-event fields. Rebuilt on each profile update.
#[derive(Debug, Clone, Default)]
pub struct ProfileFragments {
    bytes: Box<[u8]>,
    head_len: usize,
}

impl ProfileFragments {
    fn new(head: &[u8], middle: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(head.len() + middle.len());
        bytes.extend_from_slice(head);
        bytes.extend_from_slice(middle);
        Self {
            bytes: bytes.into_boxed_slice(),
            head_len: head.len(),
        }
    }

    fn head(&self) -> &[u8] {
        &self.bytes[..self.head_len]
    }

    fn middle(&self) -> &[u8] {
        &self.bytes[self.head_len..]
    }
}

pub(crate) fn push_f64(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(ryu::Buffer::new().format(value).as_bytes());
}

pub(crate) fn push_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn profile() -> CompanyProfile {
        CompanyProfile {
            industry: "retail".into(),
            revenu: 1_234_567,
            employees: 250,
            job30: 12,
            job90: 40,
            monthly_fee: 450.0,
            total_fee: 9800.0,
        }
    }

    pub(crate) fn row<'a>(
        company_id: &'a str,
        profile: &'a CompanyProfile,
        user_id: &'a str,
    ) -> ResultRow<'a> {
        ResultRow {
            company_id,
            profile,
            job30: 15,
            job90: 43,
            risk_of_churn: false,
            churn_score: Some(0.2734510917391542),
            user_id,
            nb_jobs: 3,
            creation_date: 1_767_225_601_555,
            model_version: None,
        }
    }

    fn encode(format: Format, row: &ResultRow<'_>) -> String {
        let fragments = format.profile_fragments(row.company_id, row.profile);
        let mut out = Vec::new();
        format.encode_row(&mut out, row, &fragments);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ndjson_row_has_every_field_in_order() {
        let p = profile();
        assert_eq!(
            encode(Format::Ndjson, &row("c-00042", &p, "u-01234")),
            concat!(
                r#"{"companyID":"c-00042","industry":"retail","revenu":1234567,"employees":250,"#,
                r#""job30":15,"job90":43,"monthlyFee":450.0,"totalFee":9800.0,"riskOfChurn":false,"#,
                r#""churnScore":0.2734510917391542,"userID":"u-01234","nbJobs":3,"creationDate":1767225601555}"#,
                "\n"
            )
        );
    }

    #[test]
    fn ndjson_escapes_strings_and_round_trips() {
        let mut p = profile();
        p.industry = "a\"b\\c\u{1}é".into();
        let text = encode(Format::Ndjson, &row("id\n", &p, "u\t"));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["companyID"], "id\n");
        assert_eq!(value["industry"], "a\"b\\c\u{1}é");
        assert_eq!(value["userID"], "u\t");
        assert_eq!(value["churnScore"].as_f64(), Some(0.2734510917391542));
    }

    #[test]
    fn csv_row_is_the_original_nine_columns() {
        let p = profile();
        assert_eq!(
            encode(Format::Csv, &row("c-00042", &p, "u")),
            "c-00042,retail,1234567,250,15,43,450.0,9800.0,false\n"
        );
        let mut q = profile();
        q.industry = "a,\"b\"".into();
        assert_eq!(
            encode(Format::Csv, &row("c", &q, "u")),
            "c,\"a,\"\"b\"\"\",1234567,250,15,43,450.0,9800.0,false\n"
        );
    }

    #[test]
    fn a_model_version_comes_last_when_results_carry_it() {
        let p = profile();
        let mut r = row("c", &p, "u");
        r.model_version = Some("churn-00ff");
        assert_eq!(
            encode(Format::Csv, &r),
            "c,retail,1234567,250,15,43,450.0,9800.0,false,churn-00ff\n"
        );
        let json = encode(Format::Ndjson, &r);
        assert!(
            json.ends_with(
                r#""creationDate":1767225601555,"modelVersion":"churn-00ff"}
"#
            ),
            "{json}"
        );
        let mut part = parquet::ParquetPart::new(true);
        part.push(&r, "v.parquet").unwrap();
        let unversioned = row("c", &p, "u");
        assert!(part.push(&unversioned, "v.parquet").is_err());
        let bytes = part.finish("v.parquet").unwrap();
        use ::parquet::file::reader::{FileReader, SerializedFileReader};
        use ::parquet::record::RowAccessor;
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let first = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
        assert_eq!(first.get_string(13).unwrap(), "churn-00ff");
        assert_eq!(first.get_string(0).unwrap(), "c");
    }

    #[test]
    fn a_result_without_a_score_is_null_in_ndjson_and_parquet_and_absent_in_csv() {
        let p = profile();
        let mut r = row("c", &p, "u");
        r.churn_score = None;
        r.risk_of_churn = true;
        let json: serde_json::Value = serde_json::from_str(&encode(Format::Ndjson, &r)).unwrap();
        assert_eq!(json["churnScore"], serde_json::Value::Null);
        assert_eq!(json["riskOfChurn"], true);
        assert_eq!(
            encode(Format::Csv, &r),
            "c,retail,1234567,250,15,43,450.0,9800.0,true\n"
        );
        let mut part = parquet::ParquetPart::new(false);
        part.push(&r, "s.parquet").unwrap();
        part.push(&row("d", &p, "u"), "s.parquet").unwrap();
        let bytes = part.finish("s.parquet").unwrap();
        use ::parquet::file::reader::{FileReader, SerializedFileReader};
        use ::parquet::record::{Field, RowAccessor};
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let rows: Vec<_> = reader
            .get_row_iter(None)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let score = |i: usize| rows[i].get_column_iter().nth(9).map(|(_, f)| f.clone());
        assert_eq!(score(0), Some(Field::Null));
        assert_eq!(score(1), Some(Field::Double(0.2734510917391542)));
        assert!(rows[0].get_bool(8).unwrap());
    }
}
