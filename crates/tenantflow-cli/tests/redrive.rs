//! Re-drive: a dead letter keeps its record byte for byte, and `tenantflow run --input
//! OUTPUT/_rejected` reads the records of dead letters again, fixed or not.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tenantflow_core::dead_letter::Redriven;

use crate::common::{JobRun, sorted_result_lines};

const TS: i64 = 1_767_225_601_555;

fn company(id: &str) -> String {
    format!(
        r#"{{"type":"company","companyID":"{id}","industry":"retail","revenu":1000,"employees":10,"job30":1,"job90":2,"monthlyFee":5.5,"totalFee":10}}"#
    )
}

/// Every dead letter under `out/_rejected`, in file then line order.
fn dead_letters(out: &Path) -> Vec<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out.join("_rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .flat_map(|path| {
            std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|line| (path.clone(), serde_json::from_str(line).unwrap()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn dead_letters_keep_records_byte_for_byte_and_fixed_ones_are_re_driven() {
    let dir = tempfile::tempdir().unwrap();
    // Bad records of every stage: the reader's (malformed, not UTF-8) and the workers'
    // (unknown company), in JSON written oddly and in CSV.
    let odd_json = format!(
        r#"  {{ "nbJobs" : 2,"userID":"u\u0031", "companyID": "c2", "creationDate": {TS} }}"#
    );
    let broken = format!(
        r#"{{"type":"job","companyID":"c1","userID":"u","nbJobs":"four","creationDate":{TS}}}"#
    );
    let mut not_utf8 =
        format!(r#"{{"companyID":"c1","userID":"u","nbJobs":1,"creationDate":{TS}}}"#).into_bytes();
    not_utf8[22] = 0xfe;
    let json_path = dir.path().join("jobs.ndjson");
    let json_lines: Vec<Vec<u8>> = vec![
        company("c1").into_bytes(),
        odd_json.clone().into_bytes(),
        broken.clone().into_bytes(),
        not_utf8.clone(),
    ];
    std::fs::write(&json_path, json_lines.join(&b'\n')).unwrap();
    let csv_line = format!("c2,user 7,3,{}", TS + 1000);
    let csv_path = dir.path().join("jobs.csv");
    std::fs::write(&csv_path, format!("c1,u,1,{TS}\n{csv_line}\n")).unwrap();

    let first = dir.path().join("first");
    let summary = JobRun::new(&first)
        .input(&json_path)
        .input(&csv_path)
        .summary();
    assert_eq!(summary["dead_letters"], 4, "{summary}");

    // Byte for byte: each dead letter gives back one of the bad lines exactly.
    let letters = dead_letters(&first);
    let mut kept: Vec<Vec<u8>> = letters
        .iter()
        .map(|(_, letter)| {
            let line = serde_json::to_vec(letter).unwrap();
            Redriven::parse(&line).unwrap().record.into_owned()
        })
        .collect();
    kept.sort();
    let mut originals = vec![
        odd_json.as_bytes().to_vec(),
        broken.as_bytes().to_vec(),
        not_utf8.clone(),
        csv_line.as_bytes().to_vec(),
    ];
    originals.sort();
    assert_eq!(kept, originals);
    let lossy = letters
        .iter()
        .find(|(_, l)| l["recordLossy"] == true)
        .unwrap();
    assert!(lossy.1["recordBase64"].is_string(), "{}", lossy.1);

    // Fix: the broken record edited in its dead letter; the unknown company's profile
    // given with the re-drive. The line that is not UTF-8 is left as it is.
    let fixed = broken.replace(r#""four""#, "4");
    for (path, _) in &letters {
        let text = std::fs::read_to_string(path).unwrap();
        let edited: Vec<String> = text
            .lines()
            .map(|line| {
                let mut letter: Value = serde_json::from_str(line).unwrap();
                if letter["record"] == broken.as_str() {
                    letter["record"] = fixed.as_str().into();
                }
                letter.to_string()
            })
            .collect();
        std::fs::write(path, edited.join("\n") + "\n").unwrap();
    }
    let companies = dir.path().join("companies.ndjson");
    std::fs::write(
        &companies,
        format!("{}\n{}\n", company("c1"), company("c2")),
    )
    .unwrap();

    let again = dir.path().join("again");
    let summary = JobRun::new(&again)
        .input(&companies)
        .input(&first.join("_rejected"))
        .summary();
    assert_eq!(summary["redriven"], 4, "{summary}");
    assert_eq!(summary["results"], 3, "{summary}");
    assert_eq!(summary["dead_letters"], 1, "{summary}");
    // Still not UTF-8: a dead letter again, still byte for byte.
    let letters = dead_letters(&again);
    let line = serde_json::to_vec(&letters[0].1).unwrap();
    assert_eq!(
        &*Redriven::parse(&line).unwrap().record,
        not_utf8.as_slice()
    );

    // The re-driven results are those of the fixed records read directly, in the
    // order the dead-letter files hold them (the reader's file first).
    let direct_input = dir.path().join("fixed.ndjson");
    std::fs::write(
        &direct_input,
        [company("c1"), company("c2"), fixed, odd_json].join("\n"),
    )
    .unwrap();
    let direct_csv = dir.path().join("fixed.csv");
    std::fs::write(&direct_csv, format!("{csv_line}\n")).unwrap();
    let direct = dir.path().join("direct");
    JobRun::new(&direct)
        .input(&direct_input)
        .input(&direct_csv)
        .summary();
    assert_eq!(sorted_result_lines(&again), sorted_result_lines(&direct));
}

#[test]
fn a_line_that_is_not_a_dead_letter_is_one_again_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let rejected = dir.path().join("edited/_rejected");
    std::fs::create_dir_all(&rejected).unwrap();
    std::fs::write(
        rejected.join("hand-edited.ndjson"),
        "{\"reason\":\"malformed\",\"record\":\"c1,u,1\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let summary = JobRun::new(&out).input(&rejected).summary();
    assert_eq!(
        summary["dead_letters_by_reason"]["malformed"], 1,
        "{summary}"
    );
    let letters = dead_letters(&out);
    let error = letters[0].1["error"].as_str().unwrap();
    assert!(
        error.starts_with("re-driving a dead letter: not a dead letter"),
        "{error}"
    );
}
