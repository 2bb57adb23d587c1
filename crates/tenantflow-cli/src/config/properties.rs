//! `tenantflow run --properties FILE`: the original job's Managed Flink (Kinesis Data
//! Analytics) application properties, mapped onto `run`'s configuration.
//!
//! The file is what the AWS CLI and console use: a JSON list of
//! `{"PropertyGroupId": …, "PropertyMap": {…}}`, or an object holding it as
//! `PropertyGroups` (`EnvironmentProperties`, or a whole `create-application` request) or
//! `PropertyGroupDescriptions` (`describe-application`'s answer).
//! As the original job did, the groups' maps are read as one. Each key the original
//! read is mapped, or said to be taken from elsewhere; any other key is reported, with
//! its group: nothing is ignored silently.
//!
//! | property | becomes |
//! | --- | --- |
//! | `jobs.stream.name` | input `kinesis://NAME?kind=job&format=auto` |
//! | `companies.stream.name` | input `kinesis://NAME?kind=company&format=auto` |
//! | `jobs.stream.initial.position`, `companies.stream.initial.position`, `flink.stream.initpos` | the stream's `start`: `LATEST` or `TRIM_HORIZON` (the first for its stream, the last for both) |
//! | `predictChurnApiEndpoint` | `scoring.scorer` |
//! | `predictChurnApiKey` | `scoring.auth = "api-key"` and `scoring.api_key` (blank: no key) |
//! | `S3SinkPath` | `output.url` |
//! | `enrichedcompanies.stream.name` | `output.stream` |
//! | `aws.region` | checked against `AWS_REGION`: tenantflow's AWS clients take the region from the AWS chain |
//! | `AggregationEnabled` | checked: tenantflow writes plain records to the output stream |

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use super::ConfigError;
use super::run::RunConfig;

/// One property and the group it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub group: String,
    pub value: String,
}

/// The properties of a file, by key (a key in two groups: the later group's value, as
/// the original job's merge of the groups kept).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Properties(BTreeMap<String, Property>);

/// What applying the properties says: one line per key not mapped onto a setting.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Keys tenantflow does not know, as `GROUP/KEY`.
    pub unknown: Vec<String>,
    /// Keys known but taken from elsewhere, and why.
    pub notes: Vec<String>,
}

impl Properties {
    /// Reads a properties file.
    ///
    /// # Errors
    /// A file that cannot be read, is not JSON, or has no property groups.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            place: String::new(),
            message,
        })
    }

    /// Reads the JSON of a properties file.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let groups = property_groups(&value).ok_or(
            "expected the Managed Flink application properties: a list of {\"PropertyGroupId\", \"PropertyMap\"}, or an object with PropertyGroups",
        )?;
        let mut properties = BTreeMap::new();
        for (i, group) in groups.iter().enumerate() {
            let id = group
                .get("PropertyGroupId")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("property group {}: no PropertyGroupId", i + 1))?;
            let map = group
                .get("PropertyMap")
                .and_then(Value::as_object)
                .ok_or_else(|| format!("property group `{id}`: no PropertyMap object"))?;
            for (key, value) in map {
                let value = value.as_str().ok_or_else(|| {
                    format!("property group `{id}`: `{key}` is not a string (Managed Flink properties are strings)")
                })?;
                properties.insert(
                    key.clone(),
                    Property {
                        group: id.to_owned(),
                        value: value.to_owned(),
                    },
                );
            }
        }
        Ok(Self(properties))
    }

    /// Sets the keys of `config` that the properties give, and says what else they
    /// hold. `region` is the AWS chain's region as the environment gives it
    /// (`AWS_REGION`, else `AWS_DEFAULT_REGION`).
    ///
    /// # Errors
    /// A value that cannot be used, naming the property.
    pub fn apply(&self, config: &mut RunConfig, region: Option<&str>) -> Result<Report, String> {
        let mut report = Report::default();
        // The keys looked at: any other is unknown.
        let read = RefCell::new(BTreeSet::new());
        let get = |key: &'static str| {
            read.borrow_mut().insert(key);
            self.0.get(key)
        };
        let refuse = |key: &str, p: &Property, why: &str| {
            format!(
                "property `{key}` (group `{}`) = `{}`: {why}",
                p.group, p.value
            )
        };
        let start_of = |key: &'static str| -> Result<Option<&'static str>, String> {
            let Some(p) = get(key) else {
                return Ok(None);
            };
            match p.value.trim().to_ascii_uppercase().as_str() {
                "LATEST" => Ok(Some("latest")),
                "TRIM_HORIZON" => Ok(Some("trim_horizon")),
                "AT_TIMESTAMP" => Err(refuse(
                    key,
                    p,
                    "AT_TIMESTAMP takes its time from another property; give the input as kinesis://STREAM?start=at_timestamp:TIME instead",
                )),
                _ => Err(refuse(key, p, "expected LATEST or TRIM_HORIZON")),
            }
        };
        let default_start = start_of("flink.stream.initpos")?;
        let mut inputs = Vec::new();
        for (kind, name_key, start_key) in [
            ("job", "jobs.stream.name", "jobs.stream.initial.position"),
            (
                "company",
                "companies.stream.name",
                "companies.stream.initial.position",
            ),
        ] {
            let start = start_of(start_key)?.or(default_start);
            if let Some(p) = get(name_key) {
                let name = p.value.trim();
                let mut url = format!("kinesis://{name}?kind={kind}&format=auto");
                if let Some(start) = start {
                    url.push_str(&format!("&start={start}"));
                }
                tenantflow_kinesis::url::KinesisInput::parse(&url)
                    .map_err(|e| refuse(name_key, p, &e.to_string()))?;
                inputs.push(url);
            } else if let Some(p) = get(start_key) {
                report.notes.push(format!(
                    "{}/{start_key}: no {name_key}, so no stream to start",
                    p.group
                ));
            }
        }
        if !inputs.is_empty() {
            config.sources.inputs = inputs;
        }
        if let Some(p) = get("predictChurnApiEndpoint") {
            config.scoring.scorer = p
                .value
                .trim()
                .parse()
                .map_err(|e: String| refuse("predictChurnApiEndpoint", p, &e))?;
        }
        if let Some(p) = get("predictChurnApiKey") {
            let key = p.value.trim();
            if key.is_empty() {
                report.notes.push(format!(
                    "{}/predictChurnApiKey is blank: the scorer is called without a key",
                    p.group
                ));
            } else {
                config.scoring.auth = tenantflow_remote::auth::AuthKind::ApiKey;
                config.scoring.api_key = Some(key.to_owned());
            }
        }
        if let Some(p) = get("S3SinkPath") {
            config.output.url = p
                .value
                .trim()
                .parse()
                .map_err(|e: String| refuse("S3SinkPath", p, &e))?;
        }
        if let Some(p) = get("enrichedcompanies.stream.name") {
            let name = p.value.trim();
            if name.is_empty() {
                return Err(refuse(
                    "enrichedcompanies.stream.name",
                    p,
                    "an empty stream name",
                ));
            }
            config.output.stream = Some(name.to_owned());
        }
        // `aws.region` may be in several groups: as in the original's merge of the
        // groups, the last one counts.
        if let Some(p) = get("aws.region") {
            let wanted = p.value.trim();
            match region {
                Some(actual) if actual == wanted => {}
                Some(actual) => {
                    return Err(refuse(
                        "aws.region",
                        p,
                        &format!(
                            "the AWS chain's region is {actual} (AWS_REGION); tenantflow's AWS clients use the chain's: set AWS_REGION={wanted}"
                        ),
                    ));
                }
                None => report.notes.push(format!(
                    "{}/aws.region = {wanted}: tenantflow's AWS clients take the region from the AWS chain; set AWS_REGION={wanted} unless the AWS profile says it",
                    p.group
                )),
            }
        }
        if let Some(p) = get("AggregationEnabled")
            && p.value.trim().eq_ignore_ascii_case("true")
        {
            report.notes.push(format!(
                "{}/AggregationEnabled = true: tenantflow writes plain records to the output stream (which every reader, aggregating or not, reads)",
                p.group
            ));
        }
        // Written by the console for every application; nothing to map.
        get("kinesis.analytics.flink.run.options");
        let read = read.into_inner();
        report.unknown = self
            .0
            .iter()
            .filter(|(key, _)| !read.contains(key.as_str()))
            .map(|(key, p)| format!("{}/{key}", p.group))
            .collect();
        Ok(report)
    }
}

/// The property groups of the accepted shapes.
fn property_groups(value: &Value) -> Option<&Vec<Value>> {
    if let Some(list) = value.as_array() {
        return Some(list);
    }
    let object = value.as_object()?;
    for groups in ["PropertyGroups", "PropertyGroupDescriptions"] {
        if let Some(groups) = object.get(groups) {
            return groups.as_array();
        }
    }
    // A create-application request, or describe-application's answer.
    for nested in [
        "EnvironmentProperties",
        "EnvironmentPropertyDescriptions",
        "ApplicationConfiguration",
        "ApplicationConfigurationDescription",
        "ApplicationDetail",
    ] {
        if let Some(inner) = object.get(nested) {
            return property_groups(inner);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The original job's properties, as its `create-application` request gave them.
    const ORIGINAL: &str = r#"{
        "ApplicationName": "CompanyJobProcessing",
        "ApplicationConfiguration": {
            "EnvironmentProperties": {
                "PropertyGroups": [
                    {"PropertyGroupId": "ProducerConfigProperties",
                     "PropertyMap": {"flink.stream.initpos": "LATEST", "aws.region": "us-west-2",
                                     "AggregationEnabled": "false"}},
                    {"PropertyGroupId": "ApplicationConfigProperties",
                     "PropertyMap": {"predictChurnApiEndpoint": "https://abc.execute-api.us-west-2.amazonaws.com/prod/assessChurn",
                                     "predictChurnApiKey": " ",
                                     "S3SinkPath": "s3://jb-data-set/churn"}},
                    {"PropertyGroupId": "ConsumerConfigProperties",
                     "PropertyMap": {"aws.region": "us-west-2",
                                     "jobs.stream.initial.position": "TRIM_HORIZON",
                                     "jobs.stream.name": "bigdatajobs",
                                     "companies.stream.name": "companies",
                                     "enrichedcompanies.stream.name": "enrichedcompanies",
                                     "parallelism.hint": "4"}}
                ]
            }
        }
    }"#;

    #[test]
    fn the_original_properties_map_onto_the_configuration() {
        let properties = Properties::parse(ORIGINAL).unwrap();
        let mut config = RunConfig::default();
        let report = properties.apply(&mut config, Some("us-west-2")).unwrap();
        assert_eq!(
            config.sources.inputs,
            [
                "kinesis://bigdatajobs?kind=job&format=auto&start=trim_horizon",
                "kinesis://companies?kind=company&format=auto&start=latest",
            ]
        );
        assert_eq!(
            config.scoring.scorer.to_string(),
            "https://abc.execute-api.us-west-2.amazonaws.com/prod/assessChurn"
        );
        assert_eq!(config.scoring.api_key, None);
        assert_eq!(config.output.url.as_str(), "s3://jb-data-set/churn");
        assert_eq!(config.output.stream.as_deref(), Some("enrichedcompanies"));
        assert_eq!(
            report.unknown,
            ["ConsumerConfigProperties/parallelism.hint"]
        );
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("predictChurnApiKey is blank")),
            "{report:?}"
        );
    }

    #[test]
    fn a_key_a_wrong_region_and_bad_values_are_said() {
        let list = r#"[{"PropertyGroupId": "ApplicationConfigProperties",
            "PropertyMap": {"predictChurnApiKey": "k-1", "aws.region": "eu-west-1"}}]"#;
        let properties = Properties::parse(list).unwrap();
        let mut config = RunConfig::default();
        let error = properties
            .apply(&mut config, Some("us-east-1"))
            .unwrap_err();
        assert!(error.contains("AWS_REGION=eu-west-1"), "{error}");
        let report = properties.apply(&mut config, None).unwrap();
        assert_eq!(config.scoring.api_key.as_deref(), Some("k-1"));
        assert!(report.notes.iter().any(|n| n.contains("aws.region")));

        for (bad, says) in [
            (
                r#"[{"PropertyGroupId": "g", "PropertyMap": {"flink.stream.initpos": "EARLIEST"}}]"#,
                "LATEST or TRIM_HORIZON",
            ),
            (
                r#"[{"PropertyGroupId": "g", "PropertyMap": {"predictChurnApiEndpoint": "http://h/x"}}]"#,
                "predictChurnApiEndpoint",
            ),
            (
                r#"[{"PropertyGroupId": "g", "PropertyMap": {"jobs.stream.name": "bad name"}}]"#,
                "jobs.stream.name",
            ),
        ] {
            let error = Properties::parse(bad)
                .unwrap()
                .apply(&mut RunConfig::default(), None)
                .unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
        let described = r#"{"ApplicationDetail": {"ApplicationConfigurationDescription": {
            "EnvironmentPropertyDescriptions": {"PropertyGroupDescriptions": [
                {"PropertyGroupId": "g", "PropertyMap": {"S3SinkPath": "s3://b/p"}}]}}}}"#;
        let mut config = RunConfig::default();
        Properties::parse(described)
            .unwrap()
            .apply(&mut config, None)
            .unwrap();
        assert_eq!(config.output.url.as_str(), "s3://b/p");
        for bad in [
            "[1]",
            r#"{"x": 1}"#,
            r#"[{"PropertyGroupId": "g", "PropertyMap": {"k": 1}}]"#,
            "not json",
        ] {
            assert!(Properties::parse(bad).is_err(), "{bad}");
        }
    }
}
