//! The benchmark report: one table per benchmark, with the command and the machine.

use crate::Args;

/// One benchmark's results.
pub struct Section {
    /// The title.
    pub title: String,
    /// A markdown table (header, separator and rows).
    pub table: Vec<String>,
    /// Notes under the table.
    pub notes: Vec<String>,
}

/// The whole report as markdown.
pub fn render(args: &Args, sections: &[Section]) -> String {
    let mut out = vec![
        "# Benchmarks".to_owned(),
        String::new(),
        format!("Produced by `make bench` (`cargo run --release -p pricefront-bench -- --write`) on {}.", machine()),
        format!(
            "Settings: {} products, {} vendors at {} ms, windows {:?}; sequential baseline on {} products; \
             wrk {} s × {} connections per route.",
            args.products, args.vendors, args.vendor_latency_ms, args.windows, args.sequential_products, args.edge_seconds, args.edge_connections
        ),
        "Everything runs on this one machine (Kafka, Redis, the simulator, the consumer, wrangler dev and the load), so \
         the figures are what the machine gives, not what the design can reach."
            .to_owned(),
    ];
    for section in sections {
        out.push(String::new());
        out.push(format!("## {}", section.title));
        out.push(String::new());
        out.extend(section.table.iter().cloned());
        if !section.table.is_empty() {
            out.push(String::new());
        }
        out.extend(section.notes.iter().cloned());
    }
    out.join("\n") + "\n"
}

/// The date, the cores and the memory of this machine, e.g. `2026-11-25, 2 cores, 24 GiB`.
pub(crate) fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let today = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{today}, {cores} cores, {memory_gib:.0} GiB")
}
