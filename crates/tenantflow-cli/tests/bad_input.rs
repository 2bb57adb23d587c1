//! A corpus of bad input: one dead letter per bad record, with a clear reason and its
//! line number; the good records' results are exactly those of the good records alone.

use serde_json::Value;

use crate::common::{run_summary, sorted_result_lines};

const TS: i64 = 1_767_225_601_555;

fn job(company: &str, nb: i64) -> String {
    format!(
        r#"{{"type":"job","companyID":"{company}","userID":"u","nbJobs":{nb},"creationDate":{TS}}}"#
    )
}

fn good_lines() -> Vec<Vec<u8>> {
    let company = r#"{"type":"company","companyID":"c1","industry":"retail","revenu":1000,"employees":10,"job30":1,"job90":2,"monthlyFee":5.5,"totalFee":10}"#;
    vec![
        company.into(),
        job("c1", 1).into(),
        job("c1", 2).into(),
        job("c1", 3).into(),
    ]
}

/// (line, reason, words the error must contain)
type Bad = (Vec<u8>, &'static str, &'static str);

fn bad_lines() -> Vec<Bad> {
    let mut invalid_utf8 = job("c1", 1).into_bytes();
    invalid_utf8[30] = 0xff;
    vec![
        (b"not json at all".to_vec(), "malformed", "invalid JSON"),
        (br#"{"type":"job","companyID":"c1","userID":"u","nbJo"#.to_vec(), "malformed", "invalid JSON"),
        (
            format!(r#"{{"type":"job","companyID":"c1","nbJobs":1,"creationDate":{TS}}}"#).into(),
            "malformed",
            "missing field `userID`",
        ),
        (
            format!(r#"{{"type":"job","companyID":"c1","userID":"u","nbJobs":"three","creationDate":{TS}}}"#).into(),
            "malformed",
            "invalid type",
        ),
        (job("c1", -4).into(), "malformed", "`nbJobs` must be an integer from 0 to 1000000, got -4"),
        (
            br#"{"type":"invoice","companyID":"c1","userID":"u","nbJobs":1}"#.to_vec(),
            "malformed",
            "unknown type tag `invoice`",
        ),
        (
            format!(r#"{{"type":"job","companyID":"","userID":"u","nbJobs":1,"creationDate":{TS}}}"#).into(),
            "malformed",
            "`companyID` must be a non-blank string",
        ),
        (
            format!(r#"{{"type":"job","companyID":"c1","userID":"{}","nbJobs":1}}"#, "x".repeat(10 << 20)).into(),
            "record_too_large",
            "over the limit of 1048576 bytes",
        ),
        (invalid_utf8, "malformed", "invalid UTF-8"),
        (job("c-unknown", 1).into(), "unknown_company", "no profile for company `c-unknown`"),
    ]
}

#[test]
fn each_bad_record_is_one_dead_letter_and_good_results_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_lines();
    let bad = bad_lines();

    // Interleave: good, bad, good, bad, ..., plus empty and blank lines.
    let mut mixed: Vec<Vec<u8>> = Vec::new();
    let mut expected_lines = Vec::new();
    let mut good_iter = good.iter();
    for (line, reason, words) in &bad {
        if let Some(g) = good_iter.next() {
            mixed.push(g.clone());
        }
        mixed.push(line.clone());
        expected_lines.push((mixed.len() as u64, *reason, *words));
        mixed.push(Vec::new());
    }
    mixed.push(b"   \t".to_vec());
    mixed.extend(good_iter.cloned());
    let empty_lines = bad.len() + 1;

    let mixed_path = dir.path().join("mixed.ndjson");
    std::fs::write(&mixed_path, mixed.join(&b'\n')).unwrap();
    let good_path = dir.path().join("good.ndjson");
    std::fs::write(&good_path, good.join(&b'\n')).unwrap();

    let summary = run_summary(&mixed_path, &dir.path().join("mixed"), &[]);
    run_summary(&good_path, &dir.path().join("good"), &[]);

    assert_eq!(
        sorted_result_lines(&dir.path().join("mixed")),
        sorted_result_lines(&dir.path().join("good"))
    );
    assert_eq!(sorted_result_lines(&dir.path().join("good")).len(), 3);

    let mut letters: Vec<Value> = Vec::new();
    for file in std::fs::read_dir(dir.path().join("mixed/_rejected")).unwrap() {
        let path = file.unwrap().path();
        assert!(
            !path.file_name().unwrap().to_string_lossy().starts_with('.'),
            "unfinished {path:?}"
        );
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            letters.push(serde_json::from_str(line).unwrap());
        }
    }
    letters.sort_by_key(|l| l["line"].as_u64());
    assert_eq!(letters.len(), bad.len(), "{letters:#?}");
    for (letter, (line, reason, words)) in letters.iter().zip(&expected_lines) {
        assert_eq!(letter["line"].as_u64(), Some(*line), "{letter}");
        assert_eq!(letter["reason"], *reason, "{letter}");
        assert!(
            letter["error"].as_str().unwrap().contains(words),
            "{letter} should say {words}"
        );
        assert_eq!(letter["source"], mixed_path.to_str().unwrap());
        assert!(
            letter["record"].as_str().is_some_and(|r| !r.is_empty()),
            "{letter}"
        );
    }
    let too_large = letters
        .iter()
        .find(|l| l["reason"] == "record_too_large")
        .unwrap();
    assert!(too_large["recordTruncatedFrom"].as_u64().unwrap() > 10 << 20);
    assert!(too_large["record"].as_str().unwrap().len() <= 1024);
    let lossy = letters
        .iter()
        .find(|l| l["error"].as_str().unwrap().contains("UTF-8"))
        .unwrap();
    assert_eq!(lossy["recordLossy"], true);

    assert_eq!(summary["skipped"]["empty_lines"], empty_lines, "{summary}");
    let reasons = &summary["dead_letters_by_reason"];
    assert_eq!(
        (
            &reasons["malformed"],
            &reasons["record_too_large"],
            &reasons["unknown_company"]
        ),
        (&Value::from(8), &Value::from(1), &Value::from(1)),
        "{summary}"
    );
    assert_eq!(summary["dead_letters"], 10);
    assert_eq!(summary["results"], 3);
}
