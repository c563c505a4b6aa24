//! The consumer binary refuses a bad vendors file before it joins the group: it exits with one line that
//! names the vendor and the key. The broker it is given is a closed port, so a consumer that went on to
//! Kafka would never exit by itself; the guard below kills it and fails the case instead.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A vendor that loads, with `extra` appended to its table.
fn vendors_file(dir: &std::path::Path, case: usize, url: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("vendors-{case}.toml"));
    let text = format!(
        "[[vendor]]\nname = \"shop\"\nurl = \"{url}\"\nguarantee_window_secs = 60\nprice_pointer = \"/p\"\ncurrency = \"EUR\"\n{extra}\n"
    );
    std::fs::write(&path, text).expect("writing a vendors file");
    path
}

/// Runs the consumer on `vendors` and returns its exit success and standard error, killing it if it
/// has not exited after a generous bound (it then went past the vendors file, which is the failure).
fn run_consumer(vendors: &std::path::Path) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pricefront-consumer"))
        .arg("--vendors")
        .arg(vendors)
        .args([
            "--brokers",
            "127.0.0.1:1",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("RUST_LOG")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the consumer");
    let bound = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the consumer") {
            break status;
        }
        if Instant::now() > bound {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the consumer did not refuse {}", vendors.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("reading stderr");
    (status.success(), stderr)
}

#[test]
fn a_bad_vendors_file_stops_the_consumer_with_one_line_naming_the_vendor_and_the_key() {
    let dir = std::env::temp_dir().join(format!("pricefront-refuse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let signed = |key: &str| {
        format!("[vendor.auth]\nkind = \"rsa_signed_headers\"\nconsumer_id = \"c\"\nkey_version = \"1\"\n{key}")
    };
    let plain = "http://127.0.0.1:1/p/{productId}";
    let cases = [
        (
            plain,
            "[vendor.query]\napi_key = \"${PRICEFRONT_TEST_UNSET_KEY}\"".to_owned(),
            "query.api_key: environment variable PRICEFRONT_TEST_UNSET_KEY is not set",
        ),
        (
            plain,
            signed(&format!(
                "private_key_file = \"{}\"",
                dir.join("absent.pem").display()
            )),
            "auth.private_key_file: cannot read",
        ),
        (
            plain,
            "[vendor.auth]\nkind = \"magic\"".to_owned(),
            "unknown variant `magic`",
        ),
        (
            plain,
            "offers_pointer = \"items\"".to_owned(),
            "offers_pointer: \"items\" is not a JSON pointer",
        ),
        (
            plain,
            "method = \"POST\"\nbody = \"{not json\"".to_owned(),
            "body: not JSON",
        ),
        (
            "http://127.0.0.1:1/p/{upc}",
            String::new(),
            "{upc} needs product ids that are GTINs",
        ),
    ];
    for (case, (url, extra, expected)) in cases.into_iter().enumerate() {
        let file = vendors_file(&dir, case, url, &extra);
        let (succeeded, stderr) = run_consumer(&file);
        assert!(!succeeded, "{extra}: the consumer started");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let refusal = lines
            .iter()
            .find(|line| line.contains("vendor \"shop\""))
            .unwrap_or_else(|| panic!("{extra}: no line names the vendor in {stderr:?}"));
        assert!(refusal.contains(expected), "{extra}: {refusal}");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("Error")).count(),
            1,
            "{extra}: one error line, no chain: {stderr:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
