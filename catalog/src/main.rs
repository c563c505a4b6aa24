//! `pricefront-catalog`: builds the edge's known-products filter from the operator's list of ids, and
//! loads the identifier map (a product's ASIN, a retailer's SKU) from a CSV into Redis.
//!
//! **Identifier map** (`--identifiers FILE.csv --redis-url URL`): the CSV's header is `product_id`
//! then one column per identifier scheme (lower case: `asin`, `walmart_item_id`, …); each row gives one
//! product's identifiers, an empty cell none (and removes one loaded before). Vendors name them as
//! `{id:SCHEME}` in their requests ([`pricefront_core::identifier_map`]).
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

mod identifiers;

/// Builds the known-products filter from a list of product ids.
#[derive(Debug, Parser)]
#[command(name = "pricefront-catalog", version, about)]
struct Args {
    /// The list of ids: one per line, or `first-last` ranges ("-" reads standard input).
    #[arg(long, required_unless_present = "identifiers", requires = "out")]
    ids: Option<PathBuf>,
    /// Where to write the filter.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A CSV of identifiers to load into the identifier map in Redis (`product_id,asin,…`).
    #[arg(long, requires = "redis_url", conflicts_with = "ids")]
    identifiers: Option<PathBuf>,
    /// The consumers' Redis, for `--identifiers`.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// The share of unknown ids the filter lets through (they reach the vendors, as without a filter).
    #[arg(long, default_value_t = 0.01)]
    false_positive_rate: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (Some(csv), Some(redis_url)) = (&args.identifiers, &args.redis_url) {
        let loaded = identifiers::load(csv, redis_url)?;
        println!(
            "{} products' identifiers loaded ({} set, {} removed) into {}",
            loaded.products, loaded.set, loaded.removed, redis_url
        );
        return Ok(());
    }
    let (Some(ids), Some(out)) = (&args.ids, &args.out) else {
        bail!("give --ids and --out (the filter), or --identifiers and --redis-url (the identifier map)");
    };
    let reader: Box<dyn BufRead> = if ids.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file =
            std::fs::File::open(ids).with_context(|| format!("opening {}", ids.display()))?;
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
    std::fs::write(out, filter.to_bytes()).with_context(|| format!("writing {}", out.display()))?;
    println!(
        "{count} ids, {} bytes, at most about {}% of unknown ids let through: {}",
        filter.byte_len(),
        args.false_positive_rate * 100.0,
        out.display()
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
