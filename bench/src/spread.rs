//! Latency figures of a series of samples (count, median, 99th percentile, largest), and the error for a
//! series that measured nothing.

use std::time::Duration;

/// Latency figures of one series, in milliseconds.
pub struct Spread {
    /// How many samples.
    pub count: usize,
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest.
    pub max: f64,
}

/// A percentile of no samples: the series it was asked of measured nothing (every request failed, say).
/// The figure is an error, never a 0.00 ms that reads as a fast answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no samples to take a percentile of")]
pub struct NoSamples;

impl Spread {
    /// The figures of `samples`; [`NoSamples`] when there are none.
    pub fn of(mut samples: Vec<Duration>) -> Result<Self, NoSamples> {
        samples.sort();
        let at = |q: f64| {
            samples
                .get(((samples.len() as f64 * q).ceil() as usize).saturating_sub(1))
                .map(|d| d.as_secs_f64() * 1000.0)
                .ok_or(NoSamples)
        };
        Ok(Self {
            count: samples.len(),
            p50: at(0.50)?,
            p99: at(0.99)?,
            max: at(1.0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_samples_is_an_error_not_a_zero() {
        assert_eq!(Spread::of(Vec::new()).err(), Some(NoSamples));
        let one = Spread::of(vec![ms(7)]).expect("a spread");
        assert_eq!((one.count, one.p50, one.p99, one.max), (1, 7.0, 7.0, 7.0));
    }
}
