//! Reading a process's Prometheus `/metrics`: one sample's value, and quantiles of a histogram (the way
//! Prometheus's `histogram_quantile` estimates them, by linear interpolation within a bucket).

/// Why a metrics page could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The page could not be fetched.
    #[error("reading {url}: {source}")]
    Fetch {
        /// The page's URL.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
}

/// The text of `http://127.0.0.1:{port}/metrics`.
pub async fn page(port: u16) -> Result<String, MetricsError> {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let fetch = |source| MetricsError::Fetch {
        url: url.clone(),
        source,
    };
    scrape_client()
        .get(&url)
        .send()
        .await
        .map_err(fetch)?
        .text()
        .await
        .map_err(fetch)
}

/// The one client every scrape uses. `reqwest::get` built a client per call, and building one loads the
/// system's TLS roots: a few milliseconds of CPU each time, which a benchmark scraping ten times a
/// second took from the simulated vendors in the same process. It keeps no idle connections, so a
/// scrape never reuses a connection opened on another test's (since dropped) runtime.
fn scrape_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_default()
    })
}

/// The value of the sample `name` (with its labels as the exposition writes them, e.g.
/// `pricefront_cache_writes_total{sink="edge",outcome="ok"}`) in `page`, if present.
pub fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The sum of every series of the metric `name` in `page`, whatever their labels (e.g. the lag of all
/// partitions, `pricefront_consumer_lag`); 0 when it has none.
pub fn sum_of(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        // From +0: an empty `sum()` of f64 is -0, printed "-0".
        .fold(0.0, |total, value| total + value)
}

/// The series of the metric `name` in `page` summed by the value of their label `label` (e.g. the
/// attempts of `pricefront_vendor_attempts_total` by `vendor`); series without that label are left out.
pub fn by_label(page: &str, name: &str, label: &str) -> std::collections::BTreeMap<String, f64> {
    let mut sums = std::collections::BTreeMap::new();
    for line in page.lines().filter(|l| is_series_of(l, name)) {
        let sample = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let (Some(value), Some(sample)) = (label_value(line, label), sample) {
            *sums.entry(value.to_owned()).or_insert(0.0) += sample;
        }
    }
    sums
}

/// Whether the exposition `line` is a sample of the metric `name` with labels.
pub fn is_series_of(line: &str, name: &str) -> bool {
    line.strip_prefix(name)
        .is_some_and(|rest| rest.starts_with('{'))
}

/// The value of the label `label` in the exposition `line` (`name{a="x",b="y"} 1`), if it has it.
pub fn label_value<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    let labels = line.split_once('{')?.1.split('}').next()?;
    labels.split(',').find_map(|pair| {
        pair.strip_prefix(label)?
            .strip_prefix("=\"")?
            .strip_suffix('"')
    })
}

/// A histogram's cumulative buckets: (upper bound, count), in increasing order, `+Inf` last.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    buckets: Vec<(f64, f64)>,
}

impl Histogram {
    /// The histogram `name` (without `_bucket`) in `page`, restricted to samples whose labels contain
    /// `labels` (e.g. `sink="edge"`, or empty); `None` when it has no buckets there.
    pub fn parse(page: &str, name: &str, labels: &str) -> Option<Self> {
        let prefix = format!("{name}_bucket{{");
        let mut buckets: Vec<(f64, f64)> = page
            .lines()
            .filter(|l| l.starts_with(&prefix) && l.contains(labels))
            .filter_map(|l| {
                let le = l.split("le=\"").nth(1)?.split('"').next()?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                let count = l.rsplit(' ').next()?.parse().ok()?;
                Some((bound, count))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        (!buckets.is_empty()).then_some(Self { buckets })
    }

    /// What was observed between `earlier` and this reading of the same histogram.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|&(bound, count)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|b| b.0 == bound)
                    .map_or(0.0, |b| b.1);
                (bound, count - before)
            })
            .collect();
        Histogram { buckets }
    }

    /// How many observations it holds.
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |b| b.1)
    }

    /// The estimated `q` quantile (0..=1), in the histogram's unit; `None` when it is empty. An estimate
    /// in the `+Inf` bucket is the highest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &self.buckets {
            if count >= rank {
                if bound.is_infinite() {
                    return Some(lower.0);
                }
                let share = if count > lower.1 {
                    (rank - lower.1) / (count - lower.1)
                } else {
                    0.0
                };
                return Some(lower.0 + (bound - lower.0) * share);
            }
            lower = (bound, count);
        }
        Some(lower.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# TYPE x histogram
x_sum{sink=\"edge\"} 1.0
x_count{sink=\"edge\"} 10
x_bucket{sink=\"edge\",le=\"0.01\"} 0
x_bucket{sink=\"edge\",le=\"0.02\"} 5
x_bucket{sink=\"edge\",le=\"0.04\"} 10
x_bucket{sink=\"edge\",le=\"+Inf\"} 10
x_bucket{sink=\"redis\",le=\"0.01\"} 3
x_bucket{sink=\"redis\",le=\"+Inf\"} 3
y_total 7
";

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let h = Histogram::parse(PAGE, "x", "sink=\"edge\"").unwrap();
        assert_eq!(h.count(), 10.0);
        assert!((h.quantile(0.5).unwrap() - 0.02).abs() < 1e-9);
        assert!((h.quantile(0.75).unwrap() - 0.03).abs() < 1e-9);
        assert!((h.quantile(0.25).unwrap() - 0.015).abs() < 1e-9);
    }

    #[test]
    fn since_subtracts_an_earlier_reading() {
        let h = Histogram::parse(PAGE, "x", "sink=\"redis\"").unwrap();
        assert_eq!(h.since(&h).count(), 0.0);
        assert_eq!(h.since(&h).quantile(0.5), None);
    }

    #[test]
    fn a_sample_is_found_by_its_full_name() {
        assert_eq!(sample(PAGE, "y_total"), Some(7.0));
        assert_eq!(sample(PAGE, "y"), None);
    }

    #[test]
    fn series_are_summed_by_a_label() {
        let page = "# HELP x\npricefront_a_total{vendor=\"v\",outcome=\"ok\"} 3\npricefront_a_total{vendor=\"v\",outcome=\"timeout\"} 2\npricefront_a_total{vendor=\"w\",outcome=\"ok\"} 1\npricefront_ab_total{vendor=\"v\"} 9\npricefront_a_total 4\n";
        let sums = by_label(page, "pricefront_a_total", "vendor");
        assert_eq!(sums.len(), 2);
        assert_eq!(sums["v"], 5.0);
        assert_eq!(sums["w"], 1.0);
        assert_eq!(by_label(page, "pricefront_a_total", "outcome")["ok"], 4.0);
        assert_eq!(
            label_value("x{vendor=\"v\",outcome=\"ok\"} 3", "outcome"),
            Some("ok")
        );
        assert_eq!(label_value("x{vendor=\"v\"} 3", "outcome"), None);
    }
}
