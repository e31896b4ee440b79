//! Build facts for `herald_build_info` and `--version`: the source revision (git, or `HERALD_REVISION` where the
//! source has no repository, as in a container build) and the compiler's version.

use std::process::Command;

/// What `program args` prints, trimmed, when it runs and succeeds.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=HERALD_REVISION");
    let revision = std::env::var("HERALD_REVISION")
        .ok()
        .filter(|revision| !revision.is_empty())
        .or_else(|| {
            // Built again when the checked-out commit moves.
            for path in ["HEAD", "refs/heads", "packed-refs"] {
                if let Some(path) = output("git", &["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
            output("git", &["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HERALD_REVISION={revision}");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rust_version = output(&rustc, &["--version"])
        .and_then(|version| version.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=HERALD_RUST_VERSION={rust_version}");
}
