//! `rust-version` in Cargo.toml is true: no package in the lock file needs a newer Rust, and the Dockerfile's default
//! builder image is at least that Rust.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// A Rust version as `rust-version` writes it (`1.89`, `1.89.0`), missing parts as 0.
fn parse(version: &str) -> (u64, u64, u64) {
    let mut parts = version.trim().split('.').map(|part| {
        part.parse::<u64>()
            .unwrap_or_else(|_| panic!("bad version {version:?}"))
    });
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    assert!(parts.next().is_none(), "bad version {version:?}");
    (major, minor, patch)
}

fn metadata() -> Value {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--locked", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn herald_rust_version(metadata: &Value) -> String {
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| {
            package["name"] == "herald"
                && Path::new(package["manifest_path"].as_str().unwrap())
                    == Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")
        })
        .and_then(|package| package["rust_version"].as_str())
        .expect("Cargo.toml has no rust-version")
        .to_owned()
}

#[test]
fn rust_version_covers_every_dependency() {
    let metadata = metadata();
    let declared = herald_rust_version(&metadata);
    let members: Vec<&Value> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let mut newer = Vec::new();
    let mut checked = 0;
    for package in metadata["packages"].as_array().unwrap() {
        if members.contains(&&package["id"]) {
            continue;
        }
        let Some(needed) = package["rust_version"].as_str() else {
            continue;
        };
        checked += 1;
        if parse(needed) > parse(&declared) {
            newer.push(format!(
                "{} {} needs {needed}",
                package["name"].as_str().unwrap(),
                package["version"].as_str().unwrap()
            ));
        }
    }
    assert!(checked > 0, "no dependency declares a rust-version");
    assert!(
        newer.is_empty(),
        "Cargo.toml says rust-version = {declared:?}, but: {}",
        newer.join("; ")
    );
}

#[test]
fn dockerfile_builder_default_is_at_least_rust_version() {
    let declared = herald_rust_version(&metadata());
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    let image = dockerfile
        .lines()
        .find_map(|line| line.trim().strip_prefix("ARG BUILDER="))
        .expect("the Dockerfile has no `ARG BUILDER=` default");
    let version = image
        .strip_prefix("rust:")
        .and_then(|tag| tag.split('-').next())
        .unwrap_or_else(|| {
            panic!("BUILDER default {image:?} is not an official rust:VERSION-... image")
        });
    assert!(
        parse(version) >= parse(&declared),
        "the Dockerfile builds with {image}, older than rust-version {declared}"
    );
}

#[test]
fn versions_compare_by_number() {
    assert!(parse("1.89") > parse("1.88.0"));
    assert!(parse("1.100") > parse("1.99"));
    assert_eq!(parse("1.89"), parse("1.89.0"));
}
