//! The vendors files shipped with the repository are valid: the local stack's, and every ready profile
//! of a real price API in `config/vendors/` (with made-up secrets in the environment).

use std::path::{Path, PathBuf};

use pricefront_consumer::vendors::auth::AuthSettings;
use pricefront_consumer::vendors::{parse, ProductIds};

fn config(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config")
        .join(path)
}

#[test]
fn the_shipped_vendors_file_loads() {
    let vendors = pricefront_consumer::vendors::load(&config("vendors.toml")).unwrap();
    assert_eq!(vendors.len(), 5);
}

#[test]
fn every_ready_profile_loads_with_its_secrets_from_the_environment() {
    let dir = std::env::temp_dir().join(format!("pricefront-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("walmart.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .output()
        .expect("running openssl");
    assert!(made.status.success());
    let key_path = key.display().to_string();
    let env = |name: &str| -> Option<String> {
        match name {
            "WALMART_PRIVATE_KEY_FILE" => Some(key_path.clone()),
            name if name.ends_with("_BASE_URL") || name.ends_with("_TOKEN_URL") => None,
            name if name.ends_with("_KEY_VERSION") => None,
            name => Some(format!("test-{}", name.to_ascii_lowercase())),
        }
    };
    let mut names = Vec::new();
    for profile in [
        "ebay-browse.toml",
        "bestbuy-products.toml",
        "walmart-affiliate.toml",
        "amazon-creators.toml",
        "rainforest.toml",
    ] {
        let text = std::fs::read_to_string(config("vendors").join(profile)).unwrap();
        let vendors = parse(&text, env).unwrap_or_else(|e| panic!("{profile}: {e}"));
        assert_eq!(vendors.len(), 1, "{profile}");
        let vendor = &vendors[0];
        assert_eq!(vendor.product_ids, ProductIds::Gtin, "{profile}");
        assert!(
            vendor.request.method == reqwest::Method::GET || vendor.mapped_schemes == ["asin"],
            "{profile}"
        );
        names.push(vendor.name.clone());
        // A UPC-A product: every profile asks for it at its real host.
        let product = pricefront_core::ProductId::new(12_345_678_905).unwrap();
        if vendor.mapped_schemes.is_empty() {
            let url = vendor.url_for(product).unwrap();
            assert!(url.scheme() == "https", "{profile}: {url}");
        }
        match vendor.name.as_str() {
            "ebay" | "amazon" => assert!(matches!(vendor.auth, AuthSettings::OAuth(_))),
            "walmart" => assert!(matches!(vendor.auth, AuthSettings::Signed(_))),
            _ => assert!(matches!(vendor.auth, AuthSettings::None)),
        }
    }
    assert_eq!(
        names,
        ["ebay", "bestbuy", "walmart", "amazon", "rainforest"]
    );
    let _ = std::fs::remove_dir_all(dir);
}
