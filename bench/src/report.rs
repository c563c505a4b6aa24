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
            "Settings: {} products, {} vendors at {} ms, max_in_flight {:?}; sequential baseline on {} products; \
             wrk {} s × {} connections per route.",
            args.products, args.vendors, args.vendor_latency_ms, args.max_in_flight, args.sequential_products, args.edge_seconds, args.edge_connections
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
    let machine = pricefront_harness::Machine::current();
    format!(
        "{}, {} cores, {:.0} GiB",
        pricefront_harness::utc_date(),
        machine.cpus,
        machine.memory_gib()
    )
}
