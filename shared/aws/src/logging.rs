//! JSON logs for Lambdas: one object per line, with the fields of the
//! current span (target, scan id, ticket id, request id) on every event; and
//! the one log filter of every grantwarden binary (the CLI's too).
//!
//! The filter caps the PostgreSQL driver: at debug level tokio_postgres logs
//! every statement it runs, and issuing a credential runs `CREATE ROLE ...
//! PASSWORD 'SCRAM-SHA-256$...'`, its verifier (enough to mount an offline
//! guessing attack on the password, and to log in by SCRAM to any server
//! that accepts it). No RUST_LOG setting lifts the cap: it is a second filter
//! over RUST_LOG's, so neither a more specific target nor a span directive
//! (`[issue]=trace`) gets past it.

use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Crates whose debug output carries SQL text, and so credentials: never below info.
pub const SQL_LOGGERS: [&str; 2] = ["tokio_postgres", "postgres_protocol"];

/// The log filter: `directives` in RUST_LOG's syntax (`default` when there
/// are none or they do not parse), except that [`SQL_LOGGERS`] never log
/// below info, whatever the directives say.
pub fn filter<S>(directives: Option<&str>, default: &str) -> impl Filter<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let wanted = directives.and_then(|d| EnvFilter::try_new(d).ok()).unwrap_or_else(|| EnvFilter::new(default));
    let cap = SQL_LOGGERS.iter().fold(Targets::new().with_default(LevelFilter::TRACE), |cap, target| {
        cap.with_target(*target, LevelFilter::INFO)
    });
    wanted.and(cap)
}

/// Installs the JSON subscriber; the level comes from `RUST_LOG` (default
/// `info`), under [`filter`]'s cap. Calling it twice is harmless.
pub fn init_json() {
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .with_target(false)
        .with_filter(filter(std::env::var("RUST_LOG").ok().as_deref(), "info"));
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What a subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The log lines of an issue as the driver and the function write them, under `filter`.
    fn logged<F>(filter: F) -> String
    where
        F: Filter<tracing_subscriber::Registry> + Send + Sync + 'static,
    {
        let out = Captured::default();
        let writer = out.clone();
        let layer = tracing_subscriber::fmt::layer().with_writer(move || writer.clone()).with_filter(filter);
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let _span = tracing::info_span!("issue", ticket = "tkt-1").entered();
            tracing::debug!(target: "tokio_postgres::simple_query",
                "executing statement batch: CREATE ROLE r LOGIN PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'");
            tracing::trace!(target: "postgres_protocol::authentication::sasl", "SCRAM-SHA-256$ trace");
            tracing::info!(target: "tokio_postgres::connection", "driver notice kept");
            tracing::debug!(target: "grantwarden_revoke", "own debug kept");
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn no_rust_log_lets_the_postgres_driver_log_below_info() {
        let control = logged(EnvFilter::new("debug"));
        assert!(control.contains("SCRAM-SHA-256$"), "without the cap the driver logs the verifier: {control}");
        for directives in [
            "debug",
            "trace",
            "tokio_postgres=trace,postgres_protocol=trace",
            "info,tokio_postgres::simple_query=debug",
            "[issue]=trace",
            "not a = valid directive [",
        ] {
            let out = logged(filter(Some(directives), "debug"));
            assert!(!out.contains("SCRAM-SHA-256$"), "RUST_LOG={directives}: {out}");
            assert!(out.contains("driver notice kept"), "RUST_LOG={directives}: info still passes: {out}");
        }
        assert!(logged(filter(Some("debug"), "info")).contains("own debug kept"), "the rest follows RUST_LOG");
        assert!(!logged(filter(None, "info")).contains("own debug kept"), "the default applies without RUST_LOG");
    }
}
