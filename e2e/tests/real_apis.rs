//! Every ready profile of `config/vendors/`, unchanged, against the simulator's faithful version of its
//! API, with only the base URLs pointed at the simulator: a real consumer process fills comparisons end
//! to end (Kafka, the consumer, Redis, the edge), each vendor's offer the one its API's documentation
//! makes the best (new, price plus shipping); eBay's token expires and is minted again, early (a 401) and
//! on time; a product that an API does not list is `not_listed`. The consumer runs with debug logs and
//! its spans exported, and nothing it wrote holds a secret: not its log, not its spans, not the stored
//! results, not its metrics.
//!
//! Walmart's signatures are checked against a key pair made by the `openssl` command line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pricefront_core::gtin::{check_digit, Gtin, GtinForm};
use pricefront_core::identifier_map::identifier_map_key;
use pricefront_core::{Comparison, FailureKind, ProductId};
use pricefront_harness::edge::Edge;
use pricefront_harness::otlp::OtlpReceiver;
use pricefront_harness::{metrics, profiles, TestEnv};
use vendor_sim::apis::{expected_best, Api, ApiSettingsPatch};
use vendor_sim::Simulator;

/// The profiles, by vendor name, and the API each follows.
const PROFILES: [(&str, &str, Api); 5] = [
    ("ebay-browse.toml", "ebay", Api::Ebay),
    ("bestbuy-products.toml", "bestbuy", Api::BestBuy),
    ("walmart-affiliate.toml", "walmart", Api::Walmart),
    ("amazon-creators.toml", "amazon", Api::Amazon),
    ("rainforest.toml", "rainforest", Api::Rainforest),
];

/// eBay's tokens live this long here (7,200 s at eBay), so that the test sees one expire.
const EBAY_TOKEN_SECS: u64 = 4;

/// A UPC-A product (12 digits, the first not zero) from an 11-digit `body`.
fn upc_product(body: u64) -> ProductId {
    let text = body.to_string();
    let check = check_digit(text.as_bytes());
    ProductId::new(body * 10 + u64::from(check)).expect("non-zero")
}

/// The ASIN the identifier map gives `product`.
fn asin_of(product: ProductId) -> String {
    format!("B0{:08}", product.get() % 100_000_000)
}

/// The identifier each API is asked by, as its profile writes it.
fn identifier(api: Api, product: ProductId) -> String {
    let gtin = Gtin::of(product).expect("a GTIN");
    match api {
        Api::Ebay | Api::Rainforest => gtin.form(GtinForm::Gtin13).unwrap().to_owned(),
        Api::BestBuy | Api::Walmart => gtin.form(GtinForm::Upc).unwrap().to_owned(),
        Api::Amazon => asin_of(product),
    }
}

/// Products from `from` on whose every API has a new offer (`all = true`), or that at least one API
/// does not list (`all = false`).
fn products(from: u64, count: usize, all: bool) -> Vec<ProductId> {
    (from..)
        .map(upc_product)
        .filter(|product| {
            let listed = PROFILES
                .iter()
                .filter(|(_, _, api)| expected_best(*api, &identifier(*api, *product)).is_some())
                .count();
            if all {
                listed == PROFILES.len()
            } else {
                listed > 0 && listed < PROFILES.len()
            }
        })
        .take(count)
        .collect()
}

/// A random secret of `name`, distinctive enough to be searched for.
fn secret(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// Makes an RSA key pair with `openssl` in `dir`; the private key's path and the public key's PEM.
fn openssl_key_pair(dir: &Path) -> (String, String) {
    let key = dir.join("walmart-key.pem");
    let public = dir.join("walmart-public.pem");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key_path = key.display().to_string();
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        &key_path,
    ]);
    run(&[
        "pkey",
        "-in",
        &key_path,
        "-pubout",
        "-out",
        &public.display().to_string(),
    ]);
    (key_path, std::fs::read_to_string(public).unwrap())
}

/// Waits until every product has a stored result that `done` accepts.
async fn wait_until(
    env: &TestEnv,
    products: &[ProductId],
    done: impl Fn(&Comparison) -> bool,
) -> Vec<Comparison> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let stored = env.stored(products).await.unwrap();
        if stored.len() == products.len() && stored.iter().all(&done) {
            return stored;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} results within 60 s: {stored:#?}",
            stored.len(),
            products.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Each vendor's offer is the one its API makes the best.
fn check_offers(comparison: &Comparison) {
    let offers: BTreeMap<&str, _> = comparison
        .offers
        .iter()
        .map(|offer| (offer.vendor.as_str(), offer))
        .collect();
    for (profile, vendor, api) in PROFILES {
        let id = identifier(api, comparison.product_id);
        match expected_best(api, &id) {
            Some(expected) => {
                let offer = offers.get(vendor).unwrap_or_else(|| {
                    panic!("{profile}: no offer for {id}: {:?}", comparison.failures)
                });
                assert_eq!(
                    offer.price.minor_units, expected.total_minor,
                    "{profile} {id}"
                );
                assert_eq!(
                    offer.price.currency.to_string(),
                    expected.currency,
                    "{profile}"
                );
                assert_eq!(
                    offer.url.as_deref(),
                    Some(expected.url.as_str()),
                    "{profile}"
                );
            }
            None => {
                let failure = comparison
                    .failures
                    .iter()
                    .find(|f| f.vendor == vendor)
                    .unwrap_or_else(|| panic!("{profile}: {id} is not listed, yet {offers:?}"));
                assert_eq!(
                    failure.kind,
                    FailureKind::NotListed,
                    "{profile} {id}: {failure:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_profile_fills_a_comparison_against_its_simulated_api() {
    let env = TestEnv::new("real-apis", profiles([]), 1500).await.unwrap();
    let simulator = Simulator::new(profiles([]));
    let listener = vendor_sim::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let sim = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(vendor_sim::serve(
        listener,
        simulator.clone(),
        std::future::pending(),
    ));

    // The credentials the simulated APIs accept, and the consumer's environment: secrets and base URLs.
    let (key_file, public_key) = openssl_key_pair(&env.dir);
    let ebay_secret = secret("ebay-cert");
    let amazon_secret = secret("amazon-secret");
    let bestbuy_key = secret("bestbuy-key");
    let rainforest_key = secret("rainforest-key");
    let configure = |api, patch: ApiSettingsPatch| simulator.apis().configure(api, &patch).unwrap();
    configure(
        Api::Ebay,
        ApiSettingsPatch {
            client_id: Some("pricefront-ebay-app".into()),
            client_secret: Some(ebay_secret.clone()),
            token_ttl_secs: Some(EBAY_TOKEN_SECS),
            ..Default::default()
        },
    );
    configure(
        Api::Amazon,
        ApiSettingsPatch {
            client_id: Some("pricefront-amazon-app".into()),
            client_secret: Some(amazon_secret.clone()),
            ..Default::default()
        },
    );
    configure(
        Api::BestBuy,
        ApiSettingsPatch {
            api_key: Some(bestbuy_key.clone()),
            ..Default::default()
        },
    );
    configure(
        Api::Rainforest,
        ApiSettingsPatch {
            api_key: Some(rainforest_key.clone()),
            ..Default::default()
        },
    );
    configure(
        Api::Walmart,
        ApiSettingsPatch {
            consumer_id: Some("pricefront-walmart".into()),
            public_key_pem: Some(public_key),
            ..Default::default()
        },
    );
    let consumer_env: Vec<(&str, String)> = vec![
        ("EBAY_BASE_URL", format!("{sim}/ebay")),
        ("EBAY_CLIENT_ID", "pricefront-ebay-app".into()),
        ("EBAY_CLIENT_SECRET", ebay_secret.clone()),
        ("BESTBUY_BASE_URL", format!("{sim}/bestbuy")),
        ("BESTBUY_API_KEY", bestbuy_key.clone()),
        ("WALMART_BASE_URL", format!("{sim}/walmart")),
        ("WALMART_CONSUMER_ID", "pricefront-walmart".into()),
        ("WALMART_PRIVATE_KEY_FILE", key_file.clone()),
        ("AMAZON_BASE_URL", format!("{sim}/amazon")),
        ("AMAZON_TOKEN_URL", format!("{sim}/amazon/oauth2/token")),
        ("AMAZON_CLIENT_ID", "pricefront-amazon-app".into()),
        ("AMAZON_CLIENT_SECRET", amazon_secret.clone()),
        (
            "AMAZON_PARTNER_TAG",
            vendor_sim::apis::DEFAULT_PARTNER_TAG.into(),
        ),
        ("RAINFOREST_BASE_URL", format!("{sim}/rainforest")),
        ("RAINFOREST_API_KEY", rainforest_key.clone()),
        ("RUST_LOG", "debug".into()),
    ];

    // The profiles as shipped, in a folder of their own.
    let folder = env.dir.join("profiles");
    std::fs::create_dir_all(&folder).unwrap();
    let shipped = pricefront_harness::stack::repo_path("config/vendors");
    for (profile, _, _) in PROFILES {
        std::fs::copy(shipped.join(profile), folder.join(profile)).unwrap();
    }

    // Products every API lists, and products some API does not; ASINs in the identifier map, loaded by
    // pricefront-catalog from a CSV.
    let start = 10_000_000_000 + rand::random::<u64>() % 80_000_000_000;
    let listed = products(start, 9, true);
    let partly = products(start, 3, false);
    let mut csv = String::from("product_id,asin\n");
    for product in listed.iter().chain(&partly) {
        csv.push_str(&format!("{product},{}\n", asin_of(*product)));
    }
    let csv_file = env.dir.join("identifiers.csv");
    std::fs::write(&csv_file, csv).unwrap();
    let catalog = std::process::Command::new(pricefront_harness::stack::repo_path(
        "target/debug/pricefront-catalog",
    ))
    .arg("--identifiers")
    .arg(&csv_file)
    .args(["--redis-url", &pricefront_harness::stack::redis_url()])
    .output()
    .expect("running pricefront-catalog (cargo build -p pricefront-catalog)");
    assert!(
        catalog.status.success(),
        "{}",
        String::from_utf8_lossy(&catalog.stderr)
    );
    let mut redis = env.cache.connection();
    let asin: Option<String> = redis::cmd("HGET")
        .arg(identifier_map_key(listed[0]))
        .arg("asin")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(asin.as_deref(), Some(asin_of(listed[0]).as_str()));

    let spans = OtlpReceiver::start().await.unwrap();
    let mut all_env = consumer_env.clone();
    all_env.extend(spans.exporter_env().map(|(k, v)| (k, v)));
    let folder_arg = folder.display().to_string();
    let consumer = env
        .start_consumer_with_env("real-apis", &["--vendors", &folder_arg], &all_env)
        .unwrap();

    // 1. Three products: one eBay token and one Amazon token serve them all.
    env.publish(listed[..3].iter().copied()).await.unwrap();
    let complete = |c: &Comparison| c.complete;
    for comparison in wait_until(&env, &listed[..3], complete).await {
        check_offers(&comparison);
    }
    assert_eq!(
        simulator.api_stats(Api::Ebay).tokens_minted,
        1,
        "{}",
        consumer.log_text()
    );
    assert_eq!(simulator.api_stats(Api::Amazon).tokens_minted, 1);

    // 2. eBay revokes its tokens early: the next request is refused as eBay refuses an expired token
    // (401, errorId 1001), and the consumer mints once more and asks again.
    simulator.apis().expire_tokens(Api::Ebay);
    env.publish(listed[3..6].iter().copied()).await.unwrap();
    for comparison in wait_until(&env, &listed[3..6], complete).await {
        check_offers(&comparison);
    }
    let ebay = simulator.api_stats(Api::Ebay);
    assert!(ebay.expired_token_refusals >= 1, "{ebay:?}");
    assert_eq!(ebay.tokens_minted, 2, "{ebay:?}");

    // 3. The token's own lifetime runs out: renewed before it expires, so nothing is refused.
    tokio::time::sleep(Duration::from_secs(EBAY_TOKEN_SECS + 1)).await;
    let refused_before = simulator.api_stats(Api::Ebay).expired_token_refusals;
    env.publish(listed[6..].iter().copied()).await.unwrap();
    for comparison in wait_until(&env, &listed[6..], complete).await {
        check_offers(&comparison);
    }
    let ebay = simulator.api_stats(Api::Ebay);
    assert_eq!(ebay.tokens_minted, 3, "{ebay:?}");
    assert_eq!(
        ebay.expired_token_refusals, refused_before,
        "renewed before expiry: {ebay:?}"
    );

    // 4. Products some API does not list: `not_listed` there, an answer that leaves the result complete.
    env.publish(partly.iter().copied()).await.unwrap();
    for comparison in wait_until(&env, &partly, |c| {
        c.failures.iter().all(|f| f.kind == FailureKind::NotListed)
    })
    .await
    {
        assert!(comparison.complete, "{comparison:?}");
        check_offers(&comparison);
    }
    let walmart = simulator.api_stats(Api::Walmart);
    assert_eq!(walmart.bad_signature_refusals, 0, "{walmart:?}");

    // 5. Through the edge: the Worker reading this Redis serves the comparison with every offer.
    let edge = Edge::from_env("EDGE_REDIS_URL").unwrap();
    let served = edge.get_prices(listed[0], None).await.unwrap();
    assert_eq!(served.status(), 200);
    let body: serde_json::Value = served.json().await.unwrap();
    assert_eq!(
        body["offers"].as_array().map(Vec::len),
        Some(PROFILES.len()),
        "{body}"
    );

    // 6. No secret in anything the consumer wrote, a dead letter included.
    env.publish_raw(b"not-a-product", b"{\"not\": \"a request\"}")
        .await
        .unwrap();
    let dlq = env.dead_letter_topic.clone();
    let dead_letters = loop {
        let read = tokio::task::spawn_blocking({
            let dlq = dlq.clone();
            move || {
                pricefront_harness::topic::read_to_end(
                    &pricefront_harness::brokers(),
                    &dlq,
                    Duration::from_secs(10),
                )
            }
        })
        .await
        .unwrap()
        .unwrap();
        if !read.is_empty() {
            break read;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let dead_letters: String = dead_letters
        .iter()
        .map(|r| {
            let headers: Vec<String> = r
                .headers
                .iter()
                .map(|(n, v)| format!("{n}={}", String::from_utf8_lossy(v)))
                .collect();
            format!(
                "{} {}",
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()),
                headers.join(" ")
            )
        })
        .collect();
    let page = metrics::page(consumer.metrics_port).await.unwrap();
    assert!(
        metrics::sum_of(&page, "pricefront_vendor_token_mints_total") >= 4.0,
        "{page}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await; // the last spans' export
    let stored: Vec<String> = env
        .stored(&[listed.clone(), partly.clone()].concat())
        .await
        .unwrap()
        .iter()
        .map(Comparison::to_json)
        .collect();
    let written = [
        consumer.log_text(),
        String::from_utf8_lossy(&spans.raw_exports()).into_owned(),
        stored.join("\n"),
        page,
        dead_letters,
    ];
    assert!(spans.exports() > 0, "spans were exported");
    assert!(written[0].contains("DEBUG"), "debug logs were written");
    let private_key = std::fs::read_to_string(&key_file).unwrap();
    let key_line = private_key.lines().nth(2).unwrap().to_owned();
    let mut secrets = vec![
        ebay_secret,
        amazon_secret,
        bestbuy_key,
        rainforest_key,
        key_line,
    ];
    secrets.extend(simulator.apis().issued_tokens(Api::Ebay));
    secrets.extend(simulator.apis().issued_tokens(Api::Amazon));
    assert!(
        secrets.len() >= 8,
        "the tokens are among the secrets: {}",
        secrets.len()
    );
    for (what, text) in ["log", "spans", "results", "metrics", "dead letters"]
        .iter()
        .zip(&written)
    {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "the {what} hold a secret ({}…)",
                &secret[..8]
            );
        }
    }
}
