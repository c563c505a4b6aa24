//! The operator's files in ops/ checked the way Prometheus and Grafana will read them, with no stack:
//! `promtool check rules` and `promtool test rules` on the rules; every query of the Grafana dashboard
//! checked by `promtool` (written as recording rules) and parsed, so that it names only metrics the
//! consumer exposes or the rules record; every alert with a severity, a `for:`, a runbook line and its
//! paragraph in docs/deploy.md. `promtool` comes from Debian's `prometheus` package
//! (scripts/toolchain.sh installs it).

use std::collections::BTreeSet;
use std::process::Command;

use std::sync::Arc;

use pricefront_consumer::process::metrics::{
    Metrics, PartitionLabel, Sink, SinkLabel, VendorAttemptLabels, VendorLabel, VendorOutcomeLabels,
};
use pricefront_core::newest_wins::Replacement;
use pricefront_core::FailureKind;
use pricefront_harness::stack::repo_path;
use promql_parser::parser::{self, Expr};
use promql_parser::util::visitor::{walk_expr, ExprVisitor};
use serde_json::Value;
use serde_yaml_ng::Value as Yaml;

const RULES: &str = "ops/prometheus/rules.yml";
const RULE_TESTS: &str = "ops/prometheus/rules.test.yml";
const DASHBOARDS: &str = "ops/grafana/dashboards";
const OPERATOR_PAGE: &str = "docs/deploy.md";

/// Runs promtool with `args`; its output when it fails.
fn promtool(args: &[&str]) -> Result<String, String> {
    let output = Command::new("promtool").args(args).output().map_err(|e| {
        format!("promtool {args:?} could not start ({e}): run scripts/toolchain.sh")
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "promtool {args:?} failed ({}):\n{text}",
            output.status
        ))
    }
}

fn path_text(relative: &str) -> String {
    repo_path(relative).display().to_string()
}

fn rules() -> Yaml {
    let text = std::fs::read_to_string(repo_path(RULES)).expect("reading the rules");
    serde_yaml_ng::from_str(&text).expect("the rules are YAML")
}

/// Every rule of the rules file, in order.
fn each_rule(rules: &Yaml) -> Vec<&Yaml> {
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().expect("a group's rules"))
        .collect()
}

/// Every `expr` of every dashboard in ops/grafana/dashboards, with the dashboard file's name.
fn dashboard_queries() -> Vec<(String, String)> {
    fn collect(value: &Value, file: &str, into: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => into.push((file.to_owned(), expr.clone())),
                        _ => collect(value, file, into),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect(item, file, into)),
            _ => {}
        }
    }
    let mut queries = Vec::new();
    let dir = repo_path(DASHBOARDS);
    for entry in std::fs::read_dir(&dir).expect("reading the dashboards' folder") {
        let path = entry.expect("a dashboard").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("reading a dashboard");
        let dashboard: Value = serde_json::from_str(&text).expect("a dashboard is JSON");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        collect(&dashboard, &name, &mut queries);
    }
    queries
}

/// The metric names an expression reads.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(selector) => Some(selector),
                Expr::MatrixSelector(matrix) => Some(&matrix.vs),
                _ => None,
            };
            if let Some(selector) = selector {
                let name = selector.name.clone().or_else(|| {
                    selector
                        .matchers
                        .matchers
                        .iter()
                        .find(|m| m.name == "__name__")
                        .map(|m| m.value.clone())
                });
                self.0.insert(
                    name.ok_or_else(|| format!("a selector without a metric name: {expr}"))?,
                );
            }
            Ok(true)
        }
    }
    let parsed = parser::parse(expr).map_err(|e| format!("{expr}: {e}"))?;
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &parsed)?;
    Ok(names.0)
}

/// The consumer's metrics with one child in each labelled family: a family is described on the page
/// only once it has a child.
fn every_family_touched() -> Arc<Metrics> {
    let metrics = Metrics::new();
    let vendor = || VendorLabel { vendor: "v".into() };
    metrics.vendor_failed("v", FailureKind::Timeout, 1);
    metrics.vendor_failed("v", FailureKind::CircuitOpen, 0);
    metrics.result_aggregated(true);
    metrics.cache_write(Sink::Edge, true);
    metrics.result_kept(Sink::Redis, Replacement::KeepNewer);
    metrics.rebalanced("assign");
    metrics.set_misconfigured(Sink::Edge, false);
    metrics.vendor_latency.get_or_create(&vendor()).observe(0.1);
    metrics.vendor_circuit_state.get_or_create(&vendor()).set(0);
    metrics.vendor_requests.get_or_create(&vendor()).inc();
    let attempt = VendorAttemptLabels {
        vendor: "v".into(),
        outcome: "ok",
    };
    metrics.vendor_attempts.get_or_create(&attempt).inc();
    metrics.vendor_circuit_opened.get_or_create(&vendor()).inc();
    metrics
        .lag
        .get_or_create(&PartitionLabel { partition: 0 })
        .set(0);
    let partition = PartitionLabel { partition: 0 };
    metrics.partition_assigned.get_or_create(&partition).set(1);
    let sink = SinkLabel { sink: "edge" };
    metrics.store_duration.get_or_create(&sink).observe(0.01);
    metrics
        .vendor_timeouts_while_late
        .get_or_create(&vendor())
        .inc();
    let mint = VendorOutcomeLabels {
        vendor: "v".into(),
        outcome: "minted",
    };
    metrics.vendor_token_mints.get_or_create(&mint).inc();
    metrics
        .vendor_budget_unchecked
        .get_or_create(&vendor())
        .inc();
    metrics
}

/// The series names the consumer's `/metrics` can carry: each family's name, with `_total` for a
/// counter and `_bucket`, `_sum`, `_count` for a histogram.
fn exposed_metrics() -> BTreeSet<String> {
    let text = every_family_touched().render_text();
    let mut families = 0;
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        families += 1;
        names.insert(name.to_owned());
        match kind {
            "counter" => {
                names.insert(format!("{}_total", name.trim_end_matches("_total")));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {}
        }
    }
    // A family added to the consumer and not touched above would be missing from the page.
    let registered = METRICS_SOURCE.matches("registry.register(").count();
    assert_eq!(
        families, registered,
        "every registered family on the page: touch the new one in every_family_touched()\n{text}"
    );
    names
}

/// The consumer's metrics module, where every family is registered.
const METRICS_SOURCE: &str = include_str!("../../consumer/src/process/metrics.rs");

/// The names the rules record.
fn recorded_metrics(rules: &Yaml) -> BTreeSet<String> {
    each_rule(rules)
        .into_iter()
        .filter_map(|rule| rule["record"].as_str().map(str::to_owned))
        .collect()
}

/// The metrics Prometheus adds to every scrape itself.
const SCRAPE_METRICS: [&str; 2] = ["up", "scrape_duration_seconds"];

#[test]
fn promtool_checks_the_rules() {
    let checked = promtool(&["check", "rules", &path_text(RULES)]);
    assert!(checked.is_ok(), "{}", checked.unwrap_err());
}

#[test]
fn promtool_unit_tests_of_the_rules_pass() {
    // Every alert firing on series that should wake someone, and quiet on series that should not.
    let tested = promtool(&["test", "rules", &path_text(RULE_TESTS)]);
    assert!(tested.is_ok(), "{}", tested.unwrap_err());
    let tests = std::fs::read_to_string(repo_path(RULE_TESTS)).unwrap();
    for rule in each_rule(&rules()) {
        if let Some(alert) = rule["alert"].as_str() {
            assert!(
                tests.contains(&format!("alertname: {alert}")),
                "{RULE_TESTS} has no test of {alert}"
            );
        }
    }
}

#[test]
fn every_dashboard_query_is_checked_by_promtool() {
    let queries = dashboard_queries();
    assert!(!queries.is_empty(), "no query in {DASHBOARDS}");
    // promtool checks PromQL in rule files: each query becomes a recording rule (a JSON string is a
    // valid YAML double-quoted scalar).
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, (_, expr)) in queries.iter().enumerate() {
        let quoted = serde_json::to_string(expr).unwrap();
        file.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {quoted}\n"
        ));
    }
    let dir = std::env::temp_dir().join(format!("pricefront-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dashboard-queries.yml");
    std::fs::write(&path, file).unwrap();
    let checked = promtool(&["check", "rules", &path.display().to_string()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(checked.is_ok(), "{}", checked.unwrap_err());
}

#[test]
fn every_query_names_only_metrics_the_consumer_exposes_or_the_rules_record() {
    let rules = rules();
    let exposed = exposed_metrics();
    assert!(
        exposed.contains("pricefront_vendor_circuit_state")
            && exposed.contains("pricefront_results_total"),
        "the consumer's families, described before any sample: {exposed:?}"
    );
    let known: BTreeSet<String> = exposed
        .iter()
        .cloned()
        .chain(recorded_metrics(&rules))
        .chain(SCRAPE_METRICS.iter().map(|name| name.to_string()))
        .collect();
    let rule_queries = each_rule(&rules).into_iter().map(|rule| {
        let name = rule["record"]
            .as_str()
            .or(rule["alert"].as_str())
            .unwrap_or("?");
        (
            format!("{RULES} {name}"),
            rule["expr"].as_str().expect("expr").to_owned(),
        )
    });
    let mut unknown = Vec::new();
    for (source, expr) in dashboard_queries().into_iter().chain(rule_queries) {
        let names = metric_names(&expr).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert!(!names.is_empty(), "{source}: {expr} reads no metric");
        unknown.extend(
            names
                .into_iter()
                .filter(|name| !known.contains(name))
                .map(|name| format!("{source}: {name}")),
        );
    }
    assert!(
        unknown.is_empty(),
        "metrics no one exposes or records: {unknown:#?}"
    );
}

#[test]
fn every_alert_has_a_severity_a_hold_and_a_runbook_on_the_operators_page() {
    let page = std::fs::read_to_string(repo_path(OPERATOR_PAGE)).unwrap();
    let rules = rules();
    let alerts: Vec<&Yaml> = each_rule(&rules)
        .into_iter()
        .filter(|rule| rule["alert"].is_string())
        .collect();
    assert!(alerts.len() >= 7, "the issue's seven alerts at least");
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap();
        let severity = alert["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{name}: severity {severity:?}"
        );
        assert!(alert["for"].is_string(), "{name}: no for:");
        for annotation in ["summary", "description", "runbook", "runbook_url"] {
            assert!(
                alert["annotations"][annotation].is_string(),
                "{name}: no {annotation} annotation"
            );
        }
        let url = alert["annotations"]["runbook_url"].as_str().unwrap();
        assert_eq!(
            url,
            format!("{OPERATOR_PAGE}#{}", name.to_lowercase()),
            "{name}: its runbook_url"
        );
        assert!(
            page.lines()
                .any(|line| line.trim_start_matches('#').trim() == name),
            "{OPERATOR_PAGE} has no heading for {name}"
        );
    }
}

#[test]
fn the_metric_name_walk_finds_selectors_in_functions_and_binary_operations() {
    let names = metric_names(
        "sum by (vendor) (rate(a_total[5m])) / on (vendor) max(b{x=\"1\"}) or vector(0)",
    )
    .unwrap();
    assert_eq!(names, BTreeSet::from(["a_total".into(), "b".into()]));
    assert!(metric_names("sum(").is_err());
}
