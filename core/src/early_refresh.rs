//! Refreshing hot products before they go stale: XFetch (Vattani, Chierichetti and Lowenstein, "Optimal
//! Probabilistic Cache Stampede Prevention", VLDB 2015). A fresh hit refreshes early with a probability
//! that grows as fresh-until nears and with the cost of recomputing the result, so that a product read
//! often is refreshed before it expires, and a product read rarely is not refreshed at all.

use crate::UnixMillis;

/// The default β. A refresh costs more than its fan-out (the REST proxy, Kafka and the sinks come on
/// top), so the edge starts early by a few fan-outs' worth; β = 1 is the paper's neutral choice.
pub const DEFAULT_BETA: f64 = 4.0;

/// Whether a fresh hit at `now_ms` of a result fresh until `fresh_until_ms`, whose fan-out took
/// `recompute_ms`, publishes a refresh now: `now − δ·β·ln(u) ≥ fresh-until`, with δ = `recompute_ms`
/// and `u` uniform in (0, 1] (`uniform`, drawn by the caller so that the rule stays a pure function).
/// Never with β ≤ 0 (turned off) or an unknown cost (0).
pub fn refresh_early(
    now_ms: UnixMillis,
    fresh_until_ms: UnixMillis,
    recompute_ms: u64,
    beta: f64,
    uniform: f64,
) -> bool {
    if beta.is_nan() || beta <= 0.0 || recompute_ms == 0 {
        return false;
    }
    let u = uniform.clamp(f64::MIN_POSITIVE, 1.0);
    let head_start_ms = -(recompute_ms as f64) * beta * u.ln();
    now_ms as f64 + head_start_ms >= fresh_until_ms as f64
}

/// Reads a β setting: a plain non-negative decimal (`4`, `2.5`). Written out rather than with
/// `str::parse::<f64>`, whose general float parser is a tenth of the edge's wasm for one setting.
pub fn parse_beta(text: &str) -> Option<f64> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) || whole.len() + fraction.len() > 15
    {
        return None;
    }
    let scale = 10u64.pow(fraction.len() as u32);
    let value = format!("{whole}{fraction}").parse::<u64>().ok()?;
    Some(value as f64 / scale as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (SplitMix64) for the draws.
    fn draws(seed: u64) -> impl Iterator<Item = f64> {
        let mut state = seed;
        std::iter::from_fn(move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            Some(((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64)
        })
    }

    fn share_refreshing(ms_before_expiry: u64, recompute_ms: u64, beta: f64) -> f64 {
        let fresh_until = 1_000_000;
        let now = fresh_until - ms_before_expiry;
        let hits = draws(7)
            .take(10_000)
            .filter(|&u| refresh_early(now, fresh_until, recompute_ms, beta, u))
            .count();
        hits as f64 / 10_000.0
    }

    #[test]
    fn the_chance_grows_as_expiry_nears() {
        let far = share_refreshing(2_000, 100, 4.0);
        let near = share_refreshing(200, 100, 4.0);
        let at = share_refreshing(0, 100, 4.0);
        assert!(far < near && near < at, "{far} {near} {at}");
        // P = exp(-gap / (δβ)): 0.7% at 2 s, 61% at 200 ms, always at expiry.
        assert!((far - (-5.0f64).exp()).abs() < 0.01, "{far}");
        assert!((near - (-0.5f64).exp()).abs() < 0.02, "{near}");
        assert_eq!(at, 1.0);
    }

    #[test]
    fn the_chance_grows_with_the_cost_of_recomputing() {
        assert!(share_refreshing(500, 50, 4.0) < share_refreshing(500, 400, 4.0));
    }

    #[test]
    fn beta_settings_are_plain_decimals() {
        assert_eq!(parse_beta("4"), Some(4.0));
        assert_eq!(parse_beta(" 2.5 "), Some(2.5));
        assert_eq!(parse_beta("0"), Some(0.0));
        for bad in ["", "-1", "1e3", "x", "1.2.3", ".5"] {
            assert_eq!(parse_beta(bad), None, "{bad}");
        }
    }

    #[test]
    fn off_or_unknown_cost_never_refreshes_early() {
        assert!(!refresh_early(999, 1_000, 100, 0.0, 0.01));
        assert!(!refresh_early(999, 1_000, 0, 4.0, 0.01));
        assert!(!refresh_early(999, 1_000, 100, f64::NAN, 0.01));
        // A draw of exactly 0 is treated as the smallest positive one, not as infinitely early.
        assert!(!refresh_early(0, 1_000_000_000, 100, 4.0, 0.0));
    }
}
