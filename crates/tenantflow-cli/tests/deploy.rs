//! The deployment's IAM policy grants exactly the AWS API operations the job's code
//! calls: derived from the code (the SDK operations it invokes, the object store calls
//! of the S3 store, the SigV4 signing of routes), not typed twice.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The sources of what `tenantflow run` links and calls: every crate but the
/// TenantManager service, training and the scorer server, and without the modules of
/// the commands that administer streams or produce records.
fn job_sources() -> Vec<(PathBuf, String)> {
    const NOT_THE_JOB: [&str; 7] = [
        "crates/tenantflow-tenants/",
        "crates/tenantflow-train/",
        "crates/tenantflow-scorer/",
        "crates/tenantflow-kinesis/src/admin.rs",
        "crates/tenantflow-cli/src/streams.rs",
        "crates/tenantflow-cli/src/produce.rs",
        "crates/tenantflow-cli/src/tenant_manager.rs",
    ];
    let root = root();
    let mut out = Vec::new();
    let mut stack = vec![root.join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                let is_src = relative.ends_with("/src") || relative.contains("/src/");
                let is_crate = relative.matches('/').count() == 1;
                if is_crate || is_src {
                    stack.push(path);
                }
            } else if relative.ends_with(".rs")
                && relative.contains("/src/")
                && !NOT_THE_JOB.iter().any(|n| relative.starts_with(n))
            {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path, text));
            }
        }
    }
    assert!(out.len() > 50, "the job's sources were not found");
    out
}

/// The operations of an AWS SDK crate (snake case), from its `src/operation/` folder in
/// cargo's registry, at the version `Cargo.lock` holds.
fn sdk_operations(package: &str) -> BTreeSet<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let entry = format!("name = \"{package}\"\nversion = \"");
    let at = lock
        .find(&entry)
        .unwrap_or_else(|| panic!("{package} is not locked"))
        + entry.len();
    let version = &lock[at..at + lock[at..].find('"').unwrap()];
    let cargo_home = std::env::var_os("CARGO_HOME").map_or_else(
        || Path::new(&std::env::var_os("HOME").unwrap()).join(".cargo"),
        PathBuf::from,
    );
    let registries = cargo_home.join("registry/src");
    let operations = std::fs::read_dir(&registries)
        .unwrap()
        .map(|r| {
            r.unwrap()
                .path()
                .join(format!("{package}-{version}/src/operation"))
        })
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("{package} {version} is not under {}", registries.display()));
    std::fs::read_dir(&operations)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// Every `name` called as `.name(` in `text`.
fn method_calls(text: &str) -> BTreeSet<String> {
    let mut calls = BTreeSet::new();
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices('.') {
        let name: String = text[i + 1..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() && bytes.get(i + 1 + name.len()) == Some(&b'(') {
            calls.insert(name);
        }
    }
    calls
}

/// What each call of the object store on S3 needs (object_store's S3 client issues
/// these requests for them).
fn s3_actions(call: &str) -> &'static [&'static str] {
    match call {
        "put" | "put_opts" | "create_multipart" | "put_part" | "complete_multipart" => {
            &["s3:PutObject"]
        }
        "get" | "get_opts" | "get_range" | "head" => &["s3:GetObject"],
        "copy" | "copy_if_not_exists" => &["s3:GetObject", "s3:PutObject"],
        "delete" => &["s3:DeleteObject"],
        "list" | "list_with_delimiter" => &["s3:ListBucket"],
        "abort_multipart" => &["s3:AbortMultipartUpload"],
        _ => &[],
    }
}

/// The actions the job's code needs.
fn actions_of_the_code() -> BTreeSet<String> {
    let sources = job_sources();
    let calls: BTreeSet<String> = sources.iter().flat_map(|(_, t)| method_calls(t)).collect();
    let mut actions = BTreeSet::new();
    for (package, service) in [
        ("aws-sdk-kinesis", "kinesis"),
        ("aws-sdk-sagemakerruntime", "sagemaker"),
        ("aws-sdk-dynamodb", "dynamodb"),
    ] {
        for operation in sdk_operations(package) {
            if calls.contains(&operation) {
                actions.insert(format!("{service}:{}", pascal(&operation)));
            }
        }
    }
    let s3 =
        std::fs::read_to_string(root().join("crates/tenantflow-sinks/src/store/s3.rs")).unwrap();
    let mut store_calls = BTreeSet::new();
    for (i, _) in s3.match_indices("self.client.") {
        let name: String = s3[i + "self.client.".len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let needs = s3_actions(&name);
        assert!(
            !needs.is_empty(),
            "the S3 store calls `{name}`: which S3 actions?"
        );
        store_calls.insert(name);
        actions.extend(needs.iter().map(|a| (*a).to_owned()));
    }
    assert!(store_calls.contains("put"), "{store_calls:?}");
    // Routes with IAM authorization are called signed for execute-api.
    let auth =
        std::fs::read_to_string(root().join("crates/tenantflow-remote/src/auth.rs")).unwrap();
    if auth.contains("pub const EXECUTE_API: &str = \"execute-api\"") {
        actions.insert("execute-api:Invoke".to_owned());
    }
    actions
}

/// The actions the task role's policy in `deploy/cloudformation.yaml` grants.
fn actions_of_the_policy() -> BTreeSet<String> {
    let template = std::fs::read_to_string(root().join("deploy/cloudformation.yaml")).unwrap();
    let start = template.find("\n  TaskRole:").expect("a TaskRole");
    let end = start
        + template[start..]
            .find("\n  ExecutionRole:")
            .expect("then ExecutionRole");
    let policy = &template[template[start..end].find("Policies:").unwrap() + start..end];
    policy
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .filter(|a| {
            let mut parts = a.splitn(2, ':');
            let (Some(service), Some(action)) = (parts.next(), parts.next()) else {
                return false;
            };
            !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && action.chars().all(|c| c.is_ascii_alphabetic())
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_task_policy_grants_exactly_what_the_code_calls() {
    let code = actions_of_the_code();
    let policy = actions_of_the_policy();
    // The job reads streams, and writes to S3: a parser that found nothing is wrong.
    assert!(code.contains("kinesis:GetRecords"), "{code:?}");
    assert!(code.contains("sagemaker:InvokeEndpoint"), "{code:?}");
    assert!(code.contains("dynamodb:UpdateItem"), "{code:?}");
    assert!(!code.contains("kinesis:CreateStream"), "{code:?}");
    let missing: Vec<_> = code.difference(&policy).collect();
    let extra: Vec<_> = policy.difference(&code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the policy lacks {missing:?} and grants {extra:?} beyond what the code calls"
    );
}

#[test]
fn method_calls_are_found_across_lines() {
    let calls = method_calls("client\n    .get_records()\n    .shard_iterator(x)\n    .send()");
    assert!(calls.contains("get_records") && calls.contains("send"));
    assert_eq!(pascal("describe_stream_summary"), "DescribeStreamSummary");
}
