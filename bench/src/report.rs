//! The benchmark report: one table per benchmark, with the command and the machine.

use crate::args::Args;

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

/// `existing` (BENCHMARKS.md) with each of `sections` in place of the section of the same number
/// (`## 6. …`), or added at the end: for `--only … --write`, which reruns some benchmarks only. Each
/// section merged says under its title that it was rerun alone, and on what `machine` (the date, the
/// cores), since the date at the top is that of the last whole run.
pub fn merge(existing: &str, sections: &[Section], machine: &str) -> String {
    let mut text = existing.trim_end().to_owned();
    for section in sections {
        let number = section.title.split('.').next().unwrap_or_default();
        let heading = format!("\n## {number}.");
        let rendered = {
            let mut lines = vec![
                format!("## {}", section.title),
                String::new(),
                format!(
                    "Rerun alone (`make bench` with `--only`) on {machine}; the sections without this line \
                     are from the date at the top."
                ),
                String::new(),
            ];
            lines.extend(section.table.iter().cloned());
            if !section.table.is_empty() {
                lines.push(String::new());
            }
            lines.extend(section.notes.iter().cloned());
            lines.join("\n")
        };
        match text.find(&heading) {
            Some(start) => {
                let body_start = start + 1;
                let end = text[body_start + 3..]
                    .find("\n## ")
                    .map_or(text.len(), |i| body_start + 3 + i);
                let tail = text[end..].to_owned();
                text.truncate(body_start);
                text.push_str(&rendered);
                if !tail.is_empty() {
                    text.push('\n');
                }
                text.push_str(&tail);
            }
            None => {
                text.push_str("\n\n");
                text.push_str(&rendered);
            }
        }
    }
    text + "\n"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn section(title: &str, row: &str) -> Section {
        Section {
            title: title.into(),
            table: vec![row.into()],
            notes: vec!["note".into()],
        }
    }

    #[test]
    fn merge_replaces_a_section_by_its_number_or_adds_it() {
        let existing =
            "# Benchmarks\n\nintro\n\n## 1. Fill\n\n| old 1 |\n\nnote\n\n## 2. Edge\n\n| old 2 |\n";
        let machine = "2026-12-08, 2 cores, 24 GiB";
        let rerun = "Rerun alone (`make bench` with `--only`) on 2026-12-08, 2 cores, 24 GiB; the sections \
                     without this line are from the date at the top.";
        let merged = merge(existing, &[section("1. Fill again", "| new 1 |")], machine);
        assert_eq!(
            merged,
            format!(
                "# Benchmarks\n\nintro\n\n## 1. Fill again\n\n{rerun}\n\n| new 1 |\n\nnote\n\n## 2. Edge\n\n\
                 | old 2 |\n"
            )
        );
        let last = merge(existing, &[section("2. Edge", "| new 2 |")], machine);
        assert!(
            last.ends_with(&format!("## 2. Edge\n\n{rerun}\n\n| new 2 |\n\nnote\n")),
            "{last}"
        );
        let added = merge(existing, &[section("6. Auth", "| six |")], machine);
        assert!(
            added.ends_with(&format!(
                "| old 2 |\n\n## 6. Auth\n\n{rerun}\n\n| six |\n\nnote\n"
            )),
            "{added}"
        );
        // Merged again, a section keeps one such line: the whole section is replaced.
        let twice = merge(&merged, &[section("1. Fill", "| newer 1 |")], machine);
        assert_eq!(twice.matches("Rerun alone").count(), 1, "{twice}");
    }
}
