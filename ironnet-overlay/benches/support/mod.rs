//! What the overlay benchmarks share.

use std::time::Duration;

/// Time spent on each measurement: `BENCH_MS` milliseconds, 700 by default.
pub(crate) fn budget() -> Duration {
    Duration::from_millis(
        std::env::var("BENCH_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(700),
    )
}
