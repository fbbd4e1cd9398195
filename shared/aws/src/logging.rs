//! JSON logs for Lambdas: one object per line, with the fields of the
//! current span (target, scan id, ticket id, request id) on every event.

/// Installs the JSON subscriber; the level comes from `RUST_LOG` (default `info`).
/// Calling it twice is harmless.
pub fn init_json() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .without_time()
        .with_target(false)
        .try_init();
}
