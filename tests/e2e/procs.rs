//! The external programs a scenario runs: finding them (a missing one fails the test with how to install it),
//! free loopback ports, a child-process guard that kills what it started, and bounded waiting on real events.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one wait on a real event may take before the test fails.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);
/// How often waits look again.
const POLL: Duration = Duration::from_millis(100);

/// The path of `name` on `PATH`. A missing program fails the test with the Debian package that brings it: these
/// tests never skip.
pub fn program(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    match found {
        Some(path) => path,
        None => panic!(
            "`{name}` is not installed: it comes with Debian's `{package}` package, which scripts/test.sh installs \
             (apt-get install --no-install-recommends {package}); the end-to-end tests need it and never skip"
        ),
    }
}

/// A loopback port free at the time of asking (bound on :0, then released for a child to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process this test started, with its stdout and stderr in a log file. Dropping it kills the process and
/// waits for it; when the test is failing, the end of its log is printed so the failure explains itself.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `command` with its output going to `dir/<name>.log`.
    pub fn spawn(name: &str, mut command: Command, dir: &Path) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({command:?}): {error}"));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(description)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            Ok(None) => None,
            Err(error) => Some(format!("{}: {error}", self.name)),
        }
    }

    /// Panics with the process's log if it has exited.
    pub fn assert_running(&mut self) {
        if let Some(exited) = self.exited() {
            panic!("{exited}; its log:\n{}", self.log());
        }
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not stop within {WAIT_LIMIT:?} of SIGTERM:\n{}",
            self.name,
            self.log()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "---- last {} lines of {} ({}) ----\n{}",
                tail.len(),
                self.name,
                self.log.display(),
                tail.join("\n")
            );
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, failing after [`WAIT_LIMIT`] with `what` it waited for.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {WAIT_LIMIT:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `url` until it answers 200, failing with the process's log if the process exits or the wait runs out.
pub async fn wait_ready(proc: &mut Proc, url: &str, client: &reqwest::Client) {
    let deadline = tokio::time::Instant::now() + WAIT_LIMIT;
    loop {
        proc.assert_running();
        if let Ok(response) = client.get(url).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} was not ready within {WAIT_LIMIT:?}:\n{}",
            proc.log()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Writes `text` to `dir/name`; returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Prometheus's fingerprint of a label set (`model.LabelSet.Fingerprint()`: FNV-1a 64 over the sorted names and
/// values, each followed by byte 0xff), as 16 lowercase hex digits. Empty values are left out, as every sender
/// drops them.
pub fn fingerprint(labels: &[(&str, &str)]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut sorted: Vec<_> = labels
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    sorted.sort();
    let mut hash = OFFSET;
    for (name, value) in sorted {
        for part in [name, value] {
            for byte in part.bytes().chain([0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(PRIME);
            }
        }
    }
    format!("{hash:016x}")
}

#[test]
fn fingerprint_matches_prometheus_test_vectors() {
    // Prometheus's model/signature_test.go, TestLabelsToSignature / TestMetricToFingerprint.
    assert_eq!(fingerprint(&[]), "cbf29ce484222325");
    assert_eq!(
        fingerprint(&[("name", "garland, briggs"), ("fear", "love is not enough")]),
        format!("{:016x}", 5_799_056_148_416_392_346_u64)
    );
}
