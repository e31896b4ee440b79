//! One process per store: a second `herald serve` on a SQLite store another herald serves refuses to start, naming
//! the store and the process that holds it; once that one stops, the store is free again.

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::crash::serve;

/// Runs `herald serve -c config` to its end (at most a minute); returns its exit code and log.
fn serve_to_end(config: &std::path::Path) -> (Option<i32>, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .env_remove("HERALD_CONFIG")
        .env_remove("RUST_LOG")
        .args(["serve", "-c"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (done, ended) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = ended
        .recv_timeout(Duration::from_secs(60))
        .expect("the second herald neither started nor stopped")
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_second_herald_on_one_store_refuses_to_start_naming_the_store_and_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("herald.db");
    let config = dir.path().join("herald.yaml");
    std::fs::write(
        &config,
        format!(
            "server: {{listen: 127.0.0.1:0}}\nstorage: {{url: sqlite://{}}}\n",
            db.display()
        ),
    )
    .unwrap();
    let (mut first, _address) = serve(&config);

    let (code, log) = serve_to_end(&config);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains(&db.display().to_string()), "{log}");
    assert!(log.contains(&format!("process {}", first.id())), "{log}");

    let _ = Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status();
    assert!(first.wait().unwrap().success());
    // Released: a new herald takes the store.
    let (mut second, _address) = serve(&config);
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    assert!(second.wait().unwrap().success());
}
