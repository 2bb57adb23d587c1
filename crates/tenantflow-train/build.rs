//! Tells the tests whether `../shared/` (the project's shared fixtures, beside the
//! repository) is there: the tests that read it are ignored without it, and cargo
//! reports them as such.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(have_shared)");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let shared = std::path::Path::new(&manifest).join("../../../shared");
    println!("cargo::rerun-if-changed={}", shared.join("bench").display());
    if shared.join("bench/gen_workload.py").is_file() {
        println!("cargo::rustc-cfg=have_shared");
    }
}
