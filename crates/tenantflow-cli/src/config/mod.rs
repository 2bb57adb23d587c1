//! Configuration files: one typed tree per command (`run`, `tenant-manager`, `scorer`),
//! read in layers, each overriding the one before: the built-in defaults, a TOML file
//! (`--config FILE`), the `TENANTFLOW_*` variables, the flags. A key that does not
//! exist or a value out of its bounds is refused at start, naming the key's full path,
//! the value and what was expected; `main` exits 2 on it.

pub mod properties;
pub mod run;
pub mod service;
pub mod value;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A configuration that cannot be used: `main` exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("reading the configuration file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not TOML, or a key or value is refused.
    #[error("{}{place}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        /// `:LINE:COLUMN`, where known.
        place: String,
        message: String,
    },
}

/// A command's configuration tree.
pub trait Config: Serialize + DeserializeOwned + Default {
    /// Each key with what it is for and, for a key without a default, an example;
    /// in the order `config example` writes them.
    const KEYS: &'static [(&'static str, &'static str, Option<&'static str>)];

    /// Keys whose values are secrets: `config check` masks them.
    const SECRETS: &'static [&'static str] = &[];
}

/// Reads the configuration file at `path`.
pub fn read<T: Config>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|(place, message)| ConfigError::Invalid {
        path: path.to_owned(),
        place,
        message,
    })
}

/// Parses a configuration from TOML text; the error is `(":LINE:COLUMN", message)`.
pub fn parse<T: Config>(text: &str) -> Result<T, (String, String)> {
    let deserializer = toml::de::Deserializer::parse(text)
        .map_err(|e| (place(text, e.span()), e.message().to_owned()))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let message = if key.is_empty() || key == "." {
            inner.message().to_owned()
        } else {
            format!("`{key}`: {}", inner.message())
        };
        (place(text, inner.span()), message)
    })
}

/// `:LINE:COLUMN` of a byte offset, if any.
fn place(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    format!(":{line}:{column}")
}

/// The tree as a TOML table.
fn table<T: Config>(config: &T) -> toml::Table {
    toml::Table::try_from(config).unwrap_or_default()
}

/// The value at a dotted `key`, if set.
fn lookup<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

/// A value as a flag's help shows its default: strings without quotes.
pub fn shown(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `command` with each flag's default in its help: the default of its key, so that a
/// default is written once, in the configuration. `pairs` are `(flag id, key)`; flags
/// whose key has no default, or is false, show none.
pub fn defaults_in_help<T: Config>(
    mut command: clap::Command,
    pairs: &[(&str, &str)],
) -> clap::Command {
    let defaults = table(&T::default());
    for (flag, key) in pairs {
        let Some(default) = lookup(&defaults, key).map(shown) else {
            continue;
        };
        if default == "false" {
            continue;
        }
        command = command.mut_arg(*flag, |arg| {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            let long = arg.get_long_help().map(ToString::to_string);
            let arg = arg.help(format!("{help} [default: {default}]"));
            match long {
                Some(long) => arg.long_help(format!("{long}\n\n[default: {default}]")),
                None => arg,
            }
        });
    }
    command
}

/// A commented file with every key at its default (keys without one commented out,
/// with an example).
pub fn example<T: Config>(title: &str) -> String {
    let defaults = table(&T::default());
    let mut out = format!(
        "# {title}\n#\n# Every key is shown at its default; keys without one are commented out.\n# Layers, each overriding the one before: these defaults, this file, the\n# TENANTFLOW_* variables, the flags. Durations as \"30s\", sizes as \"64MiB\".\n"
    );
    let mut section = String::new();
    for (key, help, example) in T::KEYS {
        let (parent, name) = key.rsplit_once('.').unwrap_or(("", key));
        if parent != section {
            section = parent.to_owned();
            out.push_str(&format!("\n[{section}]\n"));
        } else {
            out.push('\n');
        }
        for line in wrap(help, 86) {
            out.push_str(&format!("# {line}\n"));
        }
        match lookup(&defaults, key) {
            Some(value) => out.push_str(&format!("{name} = {value}\n")),
            None => out.push_str(&format!("# {name} = {}\n", example.unwrap_or("\"\""))),
        }
    }
    out
}

/// The effective configuration as TOML, secrets masked.
pub fn effective<T: Config>(config: &T) -> String {
    let mut table = table(config);
    mask(&mut table, "", T::SECRETS);
    toml::to_string(&table).unwrap_or_default()
}

/// Replaces secrets: the values of `secrets` keys, and passwords in URLs.
fn mask(table: &mut toml::Table, prefix: &str, secrets: &[&str]) {
    for (name, value) in table.iter_mut() {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => mask(inner, &key, secrets),
            toml::Value::String(s) if secrets.contains(&key.as_str()) => *s = "***".into(),
            toml::Value::String(s) => *s = mask_url_password(s),
            toml::Value::Array(items) => {
                for item in items {
                    if let toml::Value::String(s) = item {
                        *s = mask_url_password(s);
                    }
                }
            }
            _ => {}
        }
    }
}

/// `scheme://user:password@host…` with the password masked.
pub fn mask_url_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        _ => text.to_owned(),
    }
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Every key of the tree (dotted paths of its leaves, tables of values included), for
/// the test that `KEYS` names each one.
#[cfg(test)]
fn leaf_keys(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => leaf_keys(inner, &key, out),
            _ => out.push(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::run::RunConfig;
    use super::service::{ScorerConfig, TenantManagerConfig};
    use super::*;

    /// Each tree's `KEYS` names exactly its keys: those with defaults appear in the
    /// default tree, those without have an example that parses.
    fn keys_are_documented<T: Config + PartialEq + std::fmt::Debug>() {
        let mut keys = Vec::new();
        leaf_keys(&table(&T::default()), "", &mut keys);
        for key in &keys {
            assert!(
                T::KEYS.iter().any(|(k, ..)| k == key),
                "{key} has no entry in KEYS"
            );
        }
        for (key, help, example) in T::KEYS {
            assert!(!help.is_empty());
            let has_default = keys.iter().any(|k| k == key);
            assert_eq!(
                has_default,
                example.is_none(),
                "{key}: an example exactly when there is no default"
            );
        }
        // Every example parses, at its key.
        for (key, _, example) in T::KEYS {
            if let Some(example) = example {
                let (parent, name) = key.rsplit_once('.').unwrap_or(("", key));
                let text = if parent.is_empty() {
                    format!("{name} = {example}\n")
                } else {
                    format!("[{parent}]\n{name} = {example}\n")
                };
                parse::<T>(&text).unwrap_or_else(|e| panic!("{key}: {e:?}"));
            }
        }
    }

    /// `config example` parses back to the defaults, and uncommented it still parses.
    fn example_is_the_defaults<T: Config + PartialEq + std::fmt::Debug>() {
        let text = example::<T>("test");
        let parsed: T = parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
        assert_eq!(parsed, T::default());
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") => rest,
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        parse::<T>(&uncommented).unwrap_or_else(|e| panic!("{e:?}\n{uncommented}"));
    }

    #[test]
    fn run_keys_and_example() {
        keys_are_documented::<RunConfig>();
        example_is_the_defaults::<RunConfig>();
    }

    #[test]
    fn service_keys_and_examples() {
        keys_are_documented::<TenantManagerConfig>();
        example_is_the_defaults::<TenantManagerConfig>();
        keys_are_documented::<ScorerConfig>();
        example_is_the_defaults::<ScorerConfig>();
    }

    #[test]
    fn refusals_name_the_key_the_value_and_what_was_expected() {
        let cases = [
            (
                "[lookup]\nmax_in_flight = 0\n",
                ":2:17",
                "`lookup.max_in_flight`: 0 is out of range: expected 1..=4096",
            ),
            (
                "[output]\nformat = \"xml\"\n",
                ":2:10",
                "`output.format`: unknown variant `xml`, expected one of `ndjson`, `csv`, `parquet`",
            ),
            (
                "[lookup]\ntimeout = \"5ms\"\n",
                ":2:11",
                "`lookup.timeout`: `5ms` is out of range: from 10ms to 10m",
            ),
            (
                "[output]\nmax_file_size = \"1 PB\"\n",
                ":2:17",
                "`output.max_file_size`: unknown size unit `PB`",
            ),
            (
                "[sources]\nimputs = []\n",
                ":2:1",
                "`sources.imputs`: unknown field `imputs`, expected one of",
            ),
            (
                "[checkpoints]\ninterval = 60\n",
                ":2:12",
                "`checkpoints.interval`: invalid type: integer `60`, expected a string",
            ),
            (
                "workers = 300\n",
                ":1:11",
                "`workers`: 300 is out of range: expected 1..=256",
            ),
            (
                "[scoring]\nscorer = \"http://h/score\"\n",
                ":2:10",
                "`scoring.scorer`: ",
            ),
            ("[admin\n", ":1:7", ""),
        ];
        for (text, at, expected) in cases {
            let (place, message) = parse::<RunConfig>(text).expect_err(text);
            assert_eq!(place, at, "{text}: {message}");
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn secrets_and_url_passwords_are_masked() {
        assert_eq!(
            mask_url_password("postgres://tm:hunter2@db:5432/tenants"),
            "postgres://tm:***@db:5432/tenants"
        );
        assert_eq!(
            mask_url_password("http://h:1/x?a=b@c"),
            "http://h:1/x?a=b@c"
        );
        let config = TenantManagerConfig {
            api_key: Some("hunter2".into()),
            database: "postgres://tm:hunter3@db/tenants".into(),
            ..TenantManagerConfig::default()
        };
        let shown = effective(&config);
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
        assert!(shown.contains("api_key = \"***\""), "{shown}");

        let mut run = crate::config::run::RunConfig::default();
        run.scoring.api_key = Some("route-secret".into());
        run.lookup.api_key = Some("tm-secret".into());
        let shown = effective(&run);
        assert!(
            !shown.contains("route-secret") && !shown.contains("tm-secret"),
            "{shown}"
        );
        assert_eq!(shown.matches("api_key = \"***\"").count(), 2, "{shown}");
    }
}
