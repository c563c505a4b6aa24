//! The deployable files, checked without a Docker engine (none runs on our machines):
//!
//! - `docker-compose.yml` parses; every service has an image, or a build context and Dockerfile in the
//!   repo that builds a workspace package and runs it as a non-root user;
//! - every setting it gives the consumer, the simulator or the edge is one that the code reads;
//! - ports agree: listeners, health checks, published ports and the addresses other services call;
//! - the vendors file mounted into the consumers loads and asks the simulator service;
//! - the start order waits on health checks (and on the one-shot topic creation);
//! - the monitoring: Prometheus scrapes the consumers' metrics port with the shipped rules, and Grafana
//!   reads that Prometheus, with the dashboard and its datasource agreeing on the datasource's uid;
//! - `openapi/edge.yaml` parses and every `$ref` in it resolves.
//!
//! The real responses of the Worker are checked against the OpenAPI document by
//! `scripts/openapi-check.sh`, which needs a running Worker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pricefront_core::ProductId;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

fn yaml(relative: &str) -> Value {
    serde_yaml_ng::from_str(&read(relative))
        .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"))
}

fn compose() -> Value {
    yaml("docker-compose.yml")
}

fn services(compose: &Value) -> &serde_json::Map<String, Value> {
    compose["services"]
        .as_object()
        .expect("docker-compose.yml has no services")
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    services(compose)
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name:?}"))
}

/// A YAML scalar as text (compose takes `8080` and `"8080"` alike).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A service's environment, written as a map or as a list of `NAME=value`.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                let item = text(item);
                let (name, value) = item.split_once('=').unwrap_or((&item, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => panic!("environment is neither a map nor a list: {other}"),
    }
}

fn env(service: &Value, name: &str) -> String {
    environment(service)
        .remove(name)
        .unwrap_or_else(|| panic!("{name} is not set in {service}"))
}

/// A setting of the bridge's properties file, mounted from the repository as the image's custom-config.
fn bridge_property(compose: &Value, key: &str) -> String {
    let bridge = service(compose, "bridge");
    let mount = bridge["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .find(|v| v.ends_with(":/opt/strimzi/custom-config:ro"))
        .unwrap_or_else(|| panic!("the bridge mounts no custom-config: {bridge}"));
    let folder = mount.split(':').next().unwrap();
    let path = repo().join(folder).join("application.properties");
    let properties = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    properties
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(key)?.trim_start().strip_prefix('='))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("{key} is not set in {}", path.display()))
}

/// A command (or health check) as one line of text, whether written as a list or as a string.
fn command_text(value: &Value) -> String {
    match value {
        Value::Array(parts) => parts.iter().map(text).collect::<Vec<_>>().join(" "),
        Value::Null => String::new(),
        other => text(other),
    }
}

fn healthcheck(service: &Value) -> Option<String> {
    let test = command_text(&service["healthcheck"]["test"]);
    (!test.is_empty()).then_some(test)
}

/// The host and port of `host:port` or `scheme://host:port/...`.
fn host_port(address: &str) -> (String, u16) {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{address:?} has no port"));
    let port = port
        .parse()
        .unwrap_or_else(|_| panic!("{address:?}: bad port"));
    (host.to_owned(), port)
}

/// Published ports as (host address, host port or range, container port); short syntax only.
fn published(service: &Value) -> Vec<(String, String, u16)> {
    let Some(ports) = service["ports"].as_array() else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|port| {
            let port = text(port);
            let parts: Vec<&str> = port.split(':').collect();
            assert_eq!(
                parts.len(),
                3,
                "port {port:?}: write published ports as 127.0.0.1:HOST:CONTAINER"
            );
            let container = parts[2].parse().expect("a container port");
            (parts[0].to_owned(), parts[1].to_owned(), container)
        })
        .collect()
}

fn container_ports(service: &Value) -> BTreeSet<u16> {
    published(service).into_iter().map(|(_, _, c)| c).collect()
}

/// The value that follows `flag` (`--flag value`) in a command line, without quotes.
fn flag_values(command: &str, flag: &str) -> Vec<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    words
        .windows(2)
        .filter(|pair| pair[0] == flag)
        .map(|pair| pair[1].trim_matches(|c| c == '"' || c == '\'').to_owned())
        .collect()
}

fn flag_value(command: &str, flag: &str) -> String {
    flag_values(command, flag)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {flag} in {command:?}"))
}

/// The edge's `--var NAME:value` settings.
fn edge_vars(compose: &Value) -> BTreeMap<String, String> {
    let command = command_text(&service(compose, "edge")["command"]);
    flag_values(&command, "--var")
        .into_iter()
        .map(|var| {
            let (name, value) = var
                .split_once(':')
                .unwrap_or_else(|| panic!("--var {var}: expected NAME:value"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// Every quoted name that follows `marker` in `source` (`env = "NAME"`, `var(env, "NAME")`...).
fn quoted_after(source: &str, marker: &str) -> BTreeSet<String> {
    source
        .match_indices(marker)
        .map(|(at, _)| {
            let rest = &source[at + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// The environment variables a Rust binary reads: its clap settings' `env = "..."`, and `RUST_LOG`
/// when its log filter comes from the environment.
fn settings_read_by(sources: &[&str]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in sources.iter().map(|s| read(s)) {
        names.extend(quoted_after(&source, "env = \""));
        if source.contains("EnvFilter::try_from_default_env") {
            names.insert("RUST_LOG".to_owned());
        }
    }
    names
}

fn consumer_settings() -> BTreeSet<String> {
    settings_read_by(&[
        "consumer/src/process/settings.rs",
        "consumer/src/main.rs",
        "consumer/src/process/telemetry.rs",
    ])
}

fn simulator_settings() -> BTreeSet<String> {
    settings_read_by(&["vendor-sim/src/main.rs"])
}

/// The names a Dockerfile sets with `ENV NAME=value [NAME=value...]` (continuation lines included).
fn dockerfile_env(relative: &str) -> BTreeSet<String> {
    let joined = read(relative).replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ENV "))
        .flat_map(|rest| {
            rest.split_whitespace()
                .filter_map(|word| word.split_once('=').map(|(name, _)| name.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `name = "..."` of a crate's manifest.
fn package_name(manifest: &Path) -> String {
    let text = std::fs::read_to_string(manifest).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("name = "))
        .expect("a package name");
    line.trim_start_matches("name = ")
        .trim_matches('"')
        .to_owned()
}

#[test]
fn every_service_has_an_image_or_a_build_in_the_repo() {
    let compose = compose();
    assert!(!services(&compose).is_empty());
    for (name, service) in services(&compose) {
        let build = &service["build"];
        let image = service["image"].as_str();
        assert!(
            image.is_some() || !build.is_null(),
            "{name}: neither image nor build"
        );
        if build.is_null() {
            let image = image.unwrap();
            let tag = image.rsplit_once(':').map(|(_, tag)| tag);
            assert!(
                tag.is_some_and(|t| !t.is_empty() && t != "latest" && !t.contains('/')),
                "{name}: pin the image's version ({image})"
            );
            continue;
        }
        let (context, dockerfile) = match build {
            Value::String(context) => (context.clone(), "Dockerfile".to_owned()),
            _ => (
                text(&build["context"]),
                build["dockerfile"]
                    .as_str()
                    .unwrap_or("Dockerfile")
                    .to_owned(),
            ),
        };
        let context = repo().join(&context);
        assert!(context.is_dir(), "{name}: no build context {context:?}");
        let dockerfile = context.join(&dockerfile);
        assert!(dockerfile.is_file(), "{name}: no Dockerfile {dockerfile:?}");
        // The Dockerfile builds the package of the directory it lives in, and runs it unprivileged.
        let package = package_name(&dockerfile.parent().unwrap().join("Cargo.toml"));
        let text = std::fs::read_to_string(&dockerfile).unwrap();
        assert!(
            text.contains(&format!("cargo build --release -p {package} --locked")),
            "{name}: {dockerfile:?} does not build {package}"
        );
        let user = text
            .lines()
            .filter_map(|l| l.strip_prefix("USER "))
            .next_back()
            .unwrap_or_else(|| panic!("{name}: {dockerfile:?} sets no USER"));
        assert!(
            !matches!(user.trim().split(':').next(), Some("root" | "0")),
            "{name}: runs as root"
        );
    }
    // Files mounted from the repo exist.
    for (name, service) in services(&compose) {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let volume = text(volume);
            if let Some(source) = volume.split(':').next().filter(|s| s.starts_with("./")) {
                assert!(
                    repo().join(source).exists(),
                    "{name}: mounts {source}, which is not in the repo"
                );
            }
        }
    }
}

#[test]
fn every_setting_given_to_a_binary_is_one_it_reads() {
    let compose = compose();
    let cases = [
        ("consumer", consumer_settings(), "consumer/Dockerfile"),
        ("vendor-sim", simulator_settings(), "vendor-sim/Dockerfile"),
    ];
    for (name, known, dockerfile) in cases {
        assert!(
            known.len() > 1,
            "{name}: found no settings in its source ({known:?})"
        );
        for variable in environment(service(&compose, name)).keys() {
            assert!(
                known.contains(variable),
                "{name}: docker-compose.yml sets {variable}, which it does not read (it reads {known:?})"
            );
        }
        for variable in dockerfile_env(dockerfile) {
            assert!(
                known.contains(&variable),
                "{dockerfile} sets {variable}, which {name} does not read"
            );
        }
    }
    // The edge's vars and secrets are what edge/src/config.rs reads.
    let config = read("edge/src/config.rs");
    let mut known = quoted_after(&config, "var(env, \"");
    known.extend(quoted_after(&config, "number(env, \""));
    known.extend(quoted_after(&config, "secret(env, \""));
    // The product gate reads its own (the Durable Object has no Config).
    known.extend(quoted_after(&read("edge/src/gate.rs"), ".var(\""));
    assert!(known.contains("FILL_TOKEN") && known.contains("CACHE_BACKEND"));
    for variable in edge_vars(&compose).keys() {
        assert!(
            known.contains(variable),
            "edge: --var {variable} is not a var or secret of the Worker ({known:?})"
        );
    }
}

#[test]
fn ports_and_addresses_agree() {
    let compose = compose();
    for (name, service) in services(&compose) {
        for (address, _, _) in published(service) {
            assert_eq!(address, "127.0.0.1", "{name}: publish on 127.0.0.1 only");
        }
    }

    // Kafka: the compose network's listener is the one everybody bootstraps from.
    let kafka = service(&compose, "kafka");
    let internal = env(kafka, "KAFKA_INTER_BROKER_LISTENER_NAME");
    let advertised = env(kafka, "KAFKA_ADVERTISED_LISTENERS");
    let listener = |list: &str, name: &str| -> String {
        list.split(',')
            .find_map(|l| l.strip_prefix(&format!("{name}://")))
            .unwrap_or_else(|| panic!("no {name} listener in {list}"))
            .to_owned()
    };
    let bootstrap = listener(&advertised, &internal);
    let (host, port) = host_port(&bootstrap);
    assert_eq!(
        host, "kafka",
        "the advertised listener names the kafka service"
    );
    assert!(env(kafka, "KAFKA_LISTENERS").contains(&format!("{internal}://:{port}")));
    assert!(healthcheck(kafka).unwrap().contains(&bootstrap));
    assert_eq!(
        env(service(&compose, "consumer"), "KAFKA_BROKERS"),
        bootstrap
    );
    assert_eq!(
        bridge_property(&compose, "kafka.bootstrap.servers"),
        bootstrap
    );
    let init = command_text(&service(&compose, "kafka-init")["command"]);
    let init_bootstraps = flag_values(&init, "--bootstrap-server");
    assert!(
        !init_bootstraps.is_empty(),
        "kafka-init names no --bootstrap-server"
    );
    assert!(init_bootstraps.iter().all(|b| *b == bootstrap));
    // ... and the host's listener is published where it says it is.
    let host_listener = listener(&advertised, "HOST");
    let (_, host_port_number) = host_port(&host_listener);
    let host_target = host_port(&listener(&env(kafka, "KAFKA_LISTENERS"), "HOST")).1;
    assert!(published(kafka).contains(&(
        "127.0.0.1".into(),
        host_port_number.to_string(),
        host_target
    )));

    // Topics: the ones the consumer and the edge use, with one partition per consumer replica.
    let consumer = service(&compose, "consumer");
    let replicas = consumer["deploy"]["replicas"].as_u64().expect("replicas");
    let topics: BTreeMap<String, String> = init
        .split("kafka-topics.sh")
        .filter(|part| part.contains("--create"))
        .map(|part| {
            (
                flag_value(part, "--topic"),
                flag_value(part, "--partitions"),
            )
        })
        .collect();
    for topic in [
        pricefront_core::REQUEST_TOPIC,
        pricefront_core::DEAD_LETTER_TOPIC,
    ] {
        assert_eq!(
            topics.get(topic).map(String::as_str),
            Some(replicas.to_string().as_str()),
            "kafka-init must create {topic} with {replicas} partitions"
        );
    }
    assert_eq!(
        env(consumer, "REQUEST_TOPIC"),
        pricefront_core::REQUEST_TOPIC
    );
    assert_eq!(
        env(consumer, "DEAD_LETTER_TOPIC"),
        pricefront_core::DEAD_LETTER_TOPIC
    );
    let vars = edge_vars(&compose);
    assert_eq!(vars["REQUEST_TOPIC"], pricefront_core::REQUEST_TOPIC);

    // Redis: its port, its health check, and the consumer's and the edge's addresses.
    let redis = service(&compose, "redis");
    let redis_port: u16 = flag_value(&command_text(&redis["command"]), "--port")
        .parse()
        .unwrap();
    assert!(healthcheck(redis)
        .unwrap()
        .contains(&format!("-p {redis_port}")));
    assert!(container_ports(redis).contains(&redis_port));
    assert_eq!(
        host_port(&env(consumer, "REDIS_URL")),
        ("redis".into(), redis_port)
    );
    assert_eq!(vars["CACHE_BACKEND"], "redis");
    assert_eq!(vars["REDIS_HOST"], "redis");
    assert_eq!(vars["REDIS_PORT"], redis_port.to_string());

    // The REST proxy: the bridge's HTTP port, its health check, and the edge's REST_PROXY_URL.
    let bridge = service(&compose, "bridge");
    assert_eq!(text(&bridge["image"]), "quay.io/strimzi/kafka-bridge:1.1.0");
    let bridge_port: u16 = bridge_property(&compose, "http.port").parse().unwrap();
    let management_port: u16 = bridge_property(&compose, "http.management.port")
        .parse()
        .unwrap();
    assert_eq!(bridge_port, 8080);
    assert_eq!(bridge_property(&compose, "http.host"), "0.0.0.0");
    assert_eq!(bridge_property(&compose, "http.producer.enabled"), "true");
    let bridge_health = healthcheck(bridge).unwrap();
    assert!(
        bridge_health.contains(&format!("/dev/tcp/127.0.0.1/{management_port}"))
            && bridge_health.contains("GET /ready"),
        "the bridge's readiness is on its management port: {bridge_health}"
    );
    assert!(container_ports(bridge).contains(&bridge_port));
    assert_eq!(
        host_port(&vars["REST_PROXY_URL"]),
        ("bridge".into(), bridge_port)
    );
    assert_eq!(vars["REST_PROXY_API"], "v2", "the bridge speaks the v2 API");

    // The simulator and the consumers' metrics: listen on all interfaces, checked and published there.
    for (name, variable, path) in [
        ("vendor-sim", "SIM_LISTEN", "/healthz"),
        ("consumer", "METRICS_LISTEN", "/readyz"),
    ] {
        let service = service(&compose, name);
        let (host, port) = host_port(&env(service, variable));
        assert_eq!(
            host, "0.0.0.0",
            "{name}: {variable} must listen beyond loopback"
        );
        let check = healthcheck(service).unwrap();
        assert!(
            check.contains(&format!("/dev/tcp/127.0.0.1/{port}")) && check.contains(path),
            "{name}: the health check must ask {path} on {port}: {check}"
        );
        assert!(
            container_ports(service).contains(&port),
            "{name}: publish {port}"
        );
    }

    // The edge.
    let edge = service(&compose, "edge");
    let command = command_text(&edge["command"]);
    let edge_port: u16 = flag_value(&command, "--port").parse().unwrap();
    assert_eq!(flag_value(&command, "--ip"), "0.0.0.0");
    assert!(healthcheck(edge)
        .unwrap()
        .contains(&format!("127.0.0.1:{edge_port}/healthz")));
    assert!(container_ports(edge).contains(&edge_port));
}

#[test]
fn the_consumers_vendors_file_loads_and_asks_the_simulator() {
    let compose = compose();
    let consumer = service(&compose, "consumer");
    let inside = env(consumer, "VENDORS_FILE");
    let source = consumer["volumes"]
        .as_array()
        .expect("the consumer mounts its vendors file")
        .iter()
        .map(text)
        .find_map(|volume| {
            let mut parts = volume.split(':');
            let (source, target) = (parts.next()?, parts.next()?);
            (target == inside).then(|| source.to_owned())
        })
        .unwrap_or_else(|| panic!("nothing is mounted at VENDORS_FILE={inside}"));

    let vendors = pricefront_consumer::vendors::load(&repo().join(&source))
        .unwrap_or_else(|e| panic!("{source}: {e}"));
    assert!(!vendors.is_empty(), "{source} has no vendors");

    let simulator = service(&compose, "vendor-sim");
    let (_, sim_port) = host_port(&env(simulator, "SIM_LISTEN"));
    assert!(
        !environment(simulator).contains_key("SIM_PROFILES"),
        "the simulator runs its five default vendors"
    );
    let simulated = vendor_sim::Profiles::five_healthy().vendors;
    for vendor in &vendors {
        let url = vendor
            .url_for(ProductId::new(1).unwrap())
            .map(|u| u.to_string())
            .unwrap_or_default();
        assert_eq!(
            host_port(&url),
            ("vendor-sim".into(), sim_port),
            "{}: {url} is not the simulator service",
            vendor.name
        );
        assert!(
            url.contains(&format!("/vendors/{}/", vendor.name))
                && simulated.contains_key(&vendor.name),
            "{}: the simulator has no such vendor ({url})",
            vendor.name
        );
    }
}

#[test]
fn the_start_order_waits_on_health_checks() {
    let compose = compose();
    let services = services(&compose);
    let mut one_shot = BTreeSet::new();
    let mut waited_for_health = BTreeSet::new();
    for (name, service) in services {
        let Some(depends) = service["depends_on"].as_object() else {
            assert!(
                service["depends_on"].is_null(),
                "{name}: write depends_on with conditions"
            );
            continue;
        };
        for (target, how) in depends {
            assert!(
                services.contains_key(target),
                "{name} depends on unknown {target}"
            );
            match how["condition"].as_str() {
                Some("service_healthy") => waited_for_health.insert(target.clone()),
                Some("service_completed_successfully") => one_shot.insert(target.clone()),
                other => panic!("{name} -> {target}: condition {other:?}; wait for health"),
            };
        }
    }
    for target in &waited_for_health {
        assert!(
            healthcheck(&services[target]).is_some(),
            "{target} is waited on but has no health check"
        );
    }
    for (name, service) in services {
        if one_shot.contains(name) {
            assert_eq!(service["restart"].as_str(), Some("no"), "{name} runs once");
        } else {
            assert!(healthcheck(service).is_some(), "{name} has no health check");
        }
    }

    // Whoever calls a service waits for it.
    let depends = |name: &str| -> BTreeSet<String> {
        services[name]["depends_on"]
            .as_object()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    };
    let consumer = &services["consumer"];
    let calls = [
        host_port(&env(consumer, "KAFKA_BROKERS")).0,
        host_port(&env(consumer, "REDIS_URL")).0,
        "vendor-sim".to_owned(),
        "kafka-init".to_owned(),
    ];
    for callee in calls {
        assert!(
            depends("consumer").contains(&callee),
            "consumer must wait for {callee}"
        );
    }
    let vars = edge_vars(&compose);
    for callee in [
        vars["REDIS_HOST"].clone(),
        host_port(&vars["REST_PROXY_URL"]).0,
    ] {
        assert!(
            depends("edge").contains(&callee),
            "edge must wait for {callee}"
        );
    }
    let bridge_kafka = host_port(&bridge_property(&compose, "kafka.bootstrap.servers")).0;
    assert!(depends("bridge").contains(&bridge_kafka));
}

/// Resolves a local `$ref` (`#/a/b`) in `document`.
/// The container path a service mounts `source` (a path in the repository) at.
fn mount_target(service: &Value, source: &str) -> String {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(text)
        .find_map(|volume| {
            let mut parts = volume.split(':');
            (parts.next() == Some(source)).then(|| parts.next().unwrap_or_default().to_owned())
        })
        .unwrap_or_else(|| panic!("{source} is not mounted: {service}"))
}

#[test]
fn prometheus_scrapes_the_consumers_with_the_rules_and_grafana_reads_it() {
    let compose = compose();
    let prometheus = service(&compose, "prometheus");
    let config_path = mount_target(prometheus, "./ops/prometheus/prometheus.compose.yml");
    assert!(command_text(&prometheus["command"])
        .split_whitespace()
        .any(|word| word == format!("--config.file={config_path}")));
    let config = yaml("ops/prometheus/prometheus.compose.yml");
    let rules_path = mount_target(prometheus, "./ops/prometheus/rules.yml");
    assert_eq!(config["rule_files"][0].as_str(), Some(rules_path.as_str()));
    // Every consumer replica, on the port its METRICS_LISTEN names.
    let consumer = service(&compose, "consumer");
    let (_, metrics_port) = host_port(&env(consumer, "METRICS_LISTEN"));
    let scrape = &config["scrape_configs"][0];
    assert_eq!(
        scrape["dns_sd_configs"][0]["names"][0].as_str(),
        Some("consumer")
    );
    assert_eq!(
        scrape["dns_sd_configs"][0]["port"].as_u64(),
        Some(metrics_port.into())
    );
    let command = command_text(&prometheus["command"]);
    let listen = command
        .split_whitespace()
        .find_map(|word| word.strip_prefix("--web.listen-address="))
        .expect("prometheus's --web.listen-address=");
    let (_, prometheus_port) = host_port(listen);
    assert!(container_ports(prometheus).contains(&prometheus_port));
    assert!(healthcheck(prometheus)
        .unwrap()
        .contains(&format!(":{prometheus_port}/-/ready")));

    // Grafana: its provisioning and dashboards where the provisioning files say, and the datasource's
    // uid the one every panel names.
    let grafana = service(&compose, "grafana");
    assert_eq!(
        mount_target(grafana, "./ops/grafana/provisioning"),
        "/etc/grafana/provisioning"
    );
    let dashboards = mount_target(grafana, "./ops/grafana/dashboards");
    let provider = yaml("ops/grafana/provisioning/dashboards/pricefront.yml");
    assert_eq!(
        provider["providers"][0]["options"]["path"].as_str(),
        Some(dashboards.as_str())
    );
    let datasource = yaml("ops/grafana/provisioning/datasources/prometheus.yml");
    let datasource = &datasource["datasources"][0];
    assert_eq!(
        datasource["url"].as_str(),
        Some(format!("http://prometheus:{prometheus_port}").as_str())
    );
    let uid = datasource["uid"].as_str().expect("the datasource's uid");
    let dashboard: Value =
        serde_json::from_str(&read("ops/grafana/dashboards/pricefront.json")).unwrap();
    let mut named = BTreeSet::new();
    collect_datasource_uids(&dashboard, &mut named);
    assert_eq!(
        named,
        BTreeSet::from([uid.to_owned()]),
        "the dashboard's datasources"
    );
}

fn collect_datasource_uids(value: &Value, uids: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            // Grafana's built-in annotations source aside.
            if let Some(uid) = map
                .get("datasource")
                .and_then(|d| d["uid"].as_str())
                .filter(|uid| *uid != "-- Grafana --")
            {
                uids.insert(uid.to_owned());
            }
            map.values().for_each(|v| collect_datasource_uids(v, uids));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_datasource_uids(v, uids)),
        _ => {}
    }
}

fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    document.pointer(pointer)
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                refs.push(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

#[test]
fn the_openapi_document_parses_and_its_references_resolve() {
    let document = yaml("openapi/edge.yaml");
    assert!(text(&document["openapi"]).starts_with("3.1"));
    let mut refs = Vec::new();
    collect_refs(&document, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        assert!(
            resolve(&document, &reference).is_some(),
            "openapi/edge.yaml: {reference} resolves to nothing"
        );
    }
    // Every route of the edge (core/src/route.rs) with the statuses the README promises.
    let statuses = |path: &str, method: &str| -> BTreeSet<String> {
        document["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("openapi/edge.yaml: no {method} {path}"))
            .keys()
            .cloned()
            .collect()
    };
    let set = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect::<BTreeSet<_>>();
    for method in ["get", "head"] {
        assert!(statuses("/v1/prices/{productId}", method)
            .is_superset(&set(&["200", "202", "304", "400", "503"])));
        assert!(statuses("/healthz", method).contains("200"));
    }
    assert!(statuses("/internal/v1/prices/{productId}", "put")
        .is_superset(&set(&["204", "400", "401"])));
}
