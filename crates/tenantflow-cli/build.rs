//! Two facts about where the binary is built:
//!
//! - whether `../shared/` (the project's shared fixtures, beside the repository) is
//!   there: the tests that read it are ignored without it, and cargo reports them as
//!   such;
//! - the commit, for `tenantflow --version`: from git when the source is a checkout,
//!   else from `TENANTFLOW_GIT_HASH` (a container build passes it as a build argument),
//!   else `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let manifest = Path::new(&manifest);

    println!("cargo::rustc-check-cfg=cfg(have_shared)");
    let shared = manifest.join("../../../shared");
    println!("cargo::rerun-if-changed={}", shared.join("bench").display());
    if shared.join("bench/gen_workload.py").is_file() {
        println!("cargo::rustc-cfg=have_shared");
    }

    println!("cargo::rerun-if-env-changed=TENANTFLOW_GIT_HASH");
    let git_dir = manifest.join("../../.git");
    for watched in ["HEAD", "refs/heads", "packed-refs"] {
        let path = git_dir.join(watched);
        if path.exists() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    let from_git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(manifest)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|hash| !hash.is_empty());
    let hash = from_git
        .or_else(|| std::env::var("TENANTFLOW_GIT_HASH").ok())
        .filter(|hash| !hash.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=TENANTFLOW_GIT_HASH={hash}");
}
