//! Benchmark 6, what each authentication kind costs the consumer: CPU per comparison of its fan-out
//! (`pricefront-fanout-floor`, no Kafka or Redis) asking one simulated vendor, the same vendor and the
//! same answers each time, authenticated each way a profile can: none, a key in the query, an OAuth 2.0
//! bearer token (minted by the simulator's eBay token endpoint), and Walmart's RSA-SHA256 signed headers,
//! signed for every request and reused for a minute. The plain vendor ignores what it is sent, so the
//! differences are the client's alone.

use std::time::Duration;

use anyhow::Context;
use pricefront_harness::{profiles, vendor, TestEnv};
use vendor_sim::apis::{Api, ApiSettingsPatch};
use vendor_sim::BodyShape;

use crate::args::Args;
use crate::fill::run_floor_binary;
use crate::report::Section;

/// The comparisons at a time in each run.
const WINDOW: u32 = 256;

/// The kinds compared, with the lines each adds to the vendor's entry.
fn kinds(sim: &str, key_file: &str) -> [(&'static str, String); 5] {
    [
        ("none (plain GET)", String::new()),
        (
            "a key in the query",
            "[vendor.query]\napi_key = \"${BENCH_API_KEY}\"\n".into(),
        ),
        (
            "OAuth 2.0 bearer token (client credentials)",
            format!(
                "[vendor.auth]\nkind = \"oauth2_client_credentials\"\ntoken_url = \"{sim}/ebay/identity/v1/oauth2/token\"\nclient_id = \"bench-client\"\nclient_secret = \"${{BENCH_CLIENT_SECRET}}\"\nscope = \"https://api.ebay.com/oauth/api_scope\"\n"
            ),
        ),
        (
            "RSA-SHA256 signed headers, a signature per request",
            format!(
                "[vendor.auth]\nkind = \"rsa_signed_headers\"\nconsumer_id = \"bench\"\nkey_version = \"1\"\nprivate_key_file = \"{key_file}\"\nsignature_reuse_ms = 0\n"
            ),
        ),
        (
            "RSA-SHA256 signed headers, one signature a minute",
            format!(
                "[vendor.auth]\nkind = \"rsa_signed_headers\"\nconsumer_id = \"bench\"\nkey_version = \"1\"\nprivate_key_file = \"{key_file}\"\nsignature_reuse_ms = 60000\n"
            ),
        ),
    ]
}

/// Runs the comparison and returns its section.
pub async fn run(args: &Args) -> anyhow::Result<Section> {
    let low = args.vendor_latency_ms * 9 / 10;
    let high = args.vendor_latency_ms * 11 / 10;
    let env = TestEnv::new(
        "bench-auth",
        profiles([("plain", vendor((low, high), BodyShape::Nested))]),
        2_000,
    )
    .await?;
    let base = std::fs::read_to_string(&env.vendors_file)?;
    let sim = base
        .split('"')
        .find(|part| part.starts_with("http://"))
        .and_then(|url| url.find("/vendors/").map(|end| url[..end].to_owned()))
        .context("the simulator's address in the vendors file")?;
    env.simulator
        .apis()
        .configure(
            Api::Ebay,
            &ApiSettingsPatch {
                client_id: Some("bench-client".into()),
                client_secret: Some("bench-client-secret".into()),
                ..Default::default()
            },
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let key_file = env.dir.join("bench-key.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key_file)
        .output()
        .context("running openssl")?;
    anyhow::ensure!(made.status.success(), "openssl genpkey failed");
    let secrets = [
        ("BENCH_API_KEY", "bench-api-key-value".to_owned()),
        ("BENCH_CLIENT_SECRET", "bench-client-secret".to_owned()),
    ];
    let products = (args.products / 2).max(1_000);
    let mut table = vec![
        "| authentication | comparisons/s | CPU ms per comparison | ÷ none | token mints |"
            .to_owned(),
        "| --- | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    let mut plain_cpu_ms = None;
    let mut ratios = Vec::new();
    let mut cpu = Vec::new();
    for (name, lines) in kinds(&sim, &key_file.display().to_string()) {
        let file = env.dir.join(format!("vendors-{}.toml", table.len()));
        std::fs::write(&file, format!("{base}{lines}"))?;
        let mints_before = env.simulator.api_stats(Api::Ebay).tokens_minted;
        let report = run_floor_binary(
            &file,
            WINDOW,
            products,
            "fanout",
            &secrets,
            Duration::from_secs(args.fill_limit_secs),
            None,
        )
        .await
        .with_context(|| format!("the run with {name}"))?;
        let mints = env.simulator.api_stats(Api::Ebay).tokens_minted - mints_before;
        let cpu_ms = report.client.total() * 1000.0 / report.comparisons.max(1.0);
        let plain = *plain_cpu_ms.get_or_insert(cpu_ms);
        ratios.push(cpu_ms / plain);
        cpu.push(cpu_ms);
        table.push(format!(
            "| {name} | {:.0} | {cpu_ms:.3} | {:.2}× | {mints} |",
            report.comparisons / report.seconds.max(0.001),
            cpu_ms / plain
        ));
    }
    Ok(Section {
        title: "6. What each authentication kind costs the consumer".into(),
        table,
        notes: vec![format!(
            "Our fan-out alone (`pricefront-fanout-floor`, no Kafka or Redis), {WINDOW} comparisons at a time, {products} \
             comparisons per row, one simulated vendor at {} ms that ignores what it is sent: the same answers each time, \
             so the rows differ by the authentication alone. CPU of the consumer's process only, its start included \
             (the simulator and its token endpoint run in the bench's process). A 2048-bit RSA signature per request \
             costs {:.1}× the plain comparison ({:.2} ms more: one core signs about {:.0} requests a second, which \
             bounds a consumer that signs every request). Reused for a minute (Walmart accepts a timestamp for 3 minutes), it costs \
             {:.2}× (the key read at start and one signature, over a run of seconds). The OAuth row mints one token \
             for the whole run and costs {:.2}×.",
            args.vendor_latency_ms,
            ratios.get(3).copied().unwrap_or_default(),
            cpu.get(3).zip(cpu.first()).map_or(0.0, |(rsa, plain)| rsa - plain),
            cpu.get(3)
                .zip(cpu.first())
                .map_or(0.0, |(rsa, plain)| 1000.0 / (rsa - plain).max(0.001)),
            ratios.get(4).copied().unwrap_or_default(),
            ratios.get(2).copied().unwrap_or_default(),
        )],
    })
}
