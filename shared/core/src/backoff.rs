//! Retry delays: exponential backoff with full jitter.
//!
//! Full jitter draws each delay uniformly from `[0, min(cap, base * 2^attempt)]`
//! (the AWS Architecture Blog's "Exponential Backoff And Jitter"), which spreads
//! retrying clients best. backon's jitter adds a random amount on top of the
//! exponential delay instead, so we keep this one small function.

use std::time::Duration;

use rand::Rng;

/// How often and how long to retry a transient failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Delay ceiling of the first retry.
    pub base: Duration,
    /// Largest delay ceiling.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base: Duration::from_millis(200), cap: Duration::from_secs(10) }
    }
}

impl RetryPolicy {
    /// Ceiling of the delay before retry number `retry` (0-based).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry number `retry`, drawn with full jitter.
    pub fn delay(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

/// Runs `op` until it succeeds, fails with an error `transient` says will
/// not pass, or has been tried `policy.max_attempts` times, waiting a jittered
/// [`RetryPolicy::delay`] (through `sleep`, the caller's runtime) between
/// tries. Gives the result with the number of attempts made.
pub async fn retry<T, E, F, Fut, S, SleepFut>(
    policy: &RetryPolicy,
    what: &str,
    transient: impl Fn(&E) -> bool,
    sleep: S,
    op: &mut F,
) -> Result<(T, u32), (E, u32)>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    S: Fn(Duration) -> SleepFut,
    SleepFut: Future<Output = ()>,
{
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => return Ok((v, attempt)),
            Err(e) if transient(&e) && attempt < policy.max_attempts.max(1) => {
                let delay = policy.delay(attempt - 1, &mut rand::rng());
                tracing::warn!(error = %e, attempt, delay_ms = delay.as_millis() as u64, "{what}: transient error, retrying");
                sleep(delay).await;
            }
            Err(e) => return Err((e, attempt)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn ceiling_doubles_until_the_cap() {
        let p = RetryPolicy { max_attempts: 10, base: Duration::from_millis(100), cap: Duration::from_secs(1) };
        let c: Vec<u128> = (0..6).map(|i| p.ceiling(i).as_millis()).collect();
        assert_eq!(c, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.ceiling(u32::MAX), Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn delay_is_within_zero_and_the_ceiling(seed: u64, retry in 0u32..64, base_ms in 1u64..5_000, cap_ms in 1u64..60_000) {
            let p = RetryPolicy { max_attempts: 5, base: Duration::from_millis(base_ms), cap: Duration::from_millis(cap_ms) };
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let d = p.delay(retry, &mut rng);
            prop_assert!(d <= p.ceiling(retry));
        }
    }

    #[test]
    fn delays_are_spread_not_fixed() {
        let p = RetryPolicy::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let ds: std::collections::BTreeSet<Duration> = (0..20).map(|_| p.delay(3, &mut rng)).collect();
        assert!(ds.len() > 15, "full jitter draws distinct delays");
        assert!(ds.iter().any(|d| *d < p.ceiling(3) / 2), "some delays fall in the lower half");
    }
}
