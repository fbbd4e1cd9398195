//! moto, the AWS API emulator, shared by every test of a run.
//!
//! scripts/test starts one server and exports its URL as
//! `GRANTWARDEN_TEST_AWS_ENDPOINT`. Without it (a bare `cargo test`), the
//! first test that asks runs `scripts/moto` to start one on port 5055, which
//! later tests and processes reuse. Tests isolate themselves by naming their
//! resources with [`unique_prefix`], not by starting servers.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rand::Rng;

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:5055";

fn answers(endpoint: &str) -> bool {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    addr.parse().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

/// The moto endpoint, started when none answers.
pub fn endpoint() -> String {
    let endpoint = std::env::var("GRANTWARDEN_TEST_AWS_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned());
    if answers(&endpoint) {
        return endpoint;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/moto");
    let port = endpoint.rsplit(':').next().unwrap_or("5055").trim_end_matches('/').to_owned();
    let out = Command::new(&script).arg(&port).output().unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success() && answers(&endpoint),
        "no moto at {endpoint} and {} could not start one: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    endpoint
}

/// A lowercase name prefix no other test uses (valid for tables, buckets, queues).
pub fn unique_prefix(test: &str) -> String {
    let n: u32 = rand::rng().random();
    let test: String =
        test.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect::<String>().to_ascii_lowercase();
    format!("gw-{test}-{n:08x}")
}
