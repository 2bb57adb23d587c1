//! `--help` is the single source of the flags: every flag of each command's `--help` has a
//! row in the command's table in README.md, with the same default, and every flag of
//! those tables exists.

use std::collections::BTreeMap;
use std::process::Command;

/// The commands with flags, each with README's heading of its section.
const COMMANDS: [(&[&str], &str); 9] = [
    (&["run"], "## `tenantflow run`"),
    (&["tenant-manager"], "## `tenantflow tenant-manager`"),
    (&["scorer"], "## `tenantflow scorer`"),
    (&["train"], "## `tenantflow train`"),
    (&["produce"], "## `tenantflow produce`"),
    (&["repartition"], "## `tenantflow repartition`"),
    (&["streams", "create"], "## `tenantflow streams`"),
    (&["streams", "describe"], "## `tenantflow streams`"),
    (&["streams", "delete"], "## `tenantflow streams`"),
];

/// Flags of `--help`, each with its default if it shows one.
fn help_flags(command: &[&str]) -> BTreeMap<String, Option<String>> {
    let out = Command::new(env!("CARGO_BIN_EXE_tenantflow"))
        .args(command)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let mut flags = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('-') && indent <= 6 {
            current = trimmed
                .split([' ', ',', '='])
                .find(|t| t.starts_with("--"))
                .map(str::to_owned);
            if let Some(flag) = &current {
                flags.insert(flag.clone(), None);
            }
        }
        if let (Some(flag), Some(i)) = (&current, line.find("[default: ")) {
            let rest = &line[i + "[default: ".len()..];
            let default = rest[..rest.find(']').unwrap()].to_owned();
            flags.insert(flag.clone(), Some(default));
        }
    }
    flags.remove("--help");
    flags.remove("--version");
    flags
}

/// The flag rows of README's section under `heading`: each row's flags and its default
/// cell.
fn readme_rows(readme: &str, heading: &str) -> Vec<(Vec<String>, String)> {
    let start = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no section {heading}"));
    let body = &readme[start + heading.len() + 2..];
    let end = body.find("\n## ").unwrap_or(body.len());
    let mut rows = Vec::new();
    for line in body[..end].lines() {
        let Some(row) = line.strip_prefix("| `-") else {
            continue;
        };
        let line = format!("`-{row}");
        let cells: Vec<&str> = line.split(" | ").collect();
        let flags = cells[0]
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|t| t.starts_with("--") && t.len() > 2)
            .map(str::to_owned)
            .collect();
        let default = cells.last().unwrap().trim_end_matches(" |").to_owned();
        rows.push((flags, default));
    }
    rows
}

#[test]
fn every_flag_of_help_is_in_the_readme_with_its_default_and_back() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let mut problems = Vec::new();
    let mut by_section: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (command, heading) in COMMANDS {
        let help = help_flags(command);
        let rows = readme_rows(&readme, heading);
        for (flag, default) in &help {
            let Some((_, cell)) = rows.iter().find(|(flags, _)| flags.contains(flag)) else {
                problems.push(format!("{command:?} {flag}: no row in README's {heading}"));
                continue;
            };
            if let Some(default) = default {
                let plain = cell.replace(',', "");
                if !plain.contains(&format!("`{default}`")) {
                    problems.push(format!(
                        "{command:?} {flag}: --help says default {default}, README says {cell}"
                    ));
                }
            }
        }
        by_section
            .entry(heading)
            .or_default()
            .extend(help.into_keys());
    }
    for (heading, known) in &by_section {
        for (flags, _) in readme_rows(&readme, heading) {
            for flag in flags {
                if !known.contains(&flag) {
                    problems.push(format!(
                        "README's {heading} names {flag}, which --help has not"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
