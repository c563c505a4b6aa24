//! `pricefront-catalog`: builds the edge's known-products filter from the operator's list of ids.
//!
//! The list has one id per line, or an inclusive range `first-last`; blank lines and lines starting
//! with `#` are skipped. The filter ([`pricefront_core::catalog::KnownProducts`]) goes to `--out`;
//! `scripts/load-catalog.sh` builds it and puts it in the Worker's KV namespace under
//! `KNOWN_PRODUCTS_KEY`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use pricefront_core::catalog::KnownProducts;
use pricefront_core::ProductId;

/// Builds the known-products filter from a list of product ids.
#[derive(Debug, Parser)]
#[command(name = "pricefront-catalog", version, about)]
struct Args {
    /// The list of ids: one per line, or `first-last` ranges ("-" reads standard input).
    #[arg(long)]
    ids: PathBuf,
    /// Where to write the filter.
    #[arg(long)]
    out: PathBuf,
    /// The share of unknown ids the filter lets through (they reach the vendors, as without a filter).
    #[arg(long, default_value_t = 0.01)]
    false_positive_rate: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let reader: Box<dyn BufRead> = if args.ids.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.ids)
            .with_context(|| format!("opening {}", args.ids.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut ranges = Vec::new();
    for (number, line) in reader.lines().enumerate() {
        let line = line.context("reading the ids")?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let range = parse_line(line).with_context(|| format!("line {}: {line:?}", number + 1))?;
        ranges.push(range);
    }
    let count: u64 = ranges.iter().map(|(a, b)| b - a + 1).sum();
    let mut filter = KnownProducts::with_capacity(count, args.false_positive_rate);
    for (first, last) in ranges {
        for id in first..=last {
            filter.insert(ProductId::new(id).context("an id is out of range")?);
        }
    }
    std::fs::write(&args.out, filter.to_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{count} ids, {} bytes, at most about {}% of unknown ids let through: {}",
        filter.byte_len(),
        args.false_positive_rate * 100.0,
        args.out.display()
    );
    Ok(())
}

/// One line: an id, or an inclusive range `first-last`.
fn parse_line(line: &str) -> anyhow::Result<(u64, u64)> {
    let parse = |text: &str| -> anyhow::Result<u64> {
        let id: ProductId = text.trim().parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(id.get())
    };
    match line.split_once('-') {
        Some((first, last)) => {
            let (first, last) = (parse(first)?, parse(last)?);
            if last < first {
                bail!("the range ends before it starts");
            }
            Ok((first, last))
        }
        None => {
            let id = parse(line)?;
            Ok((id, id))
        }
    }
}
