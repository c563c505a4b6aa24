//! The edge's Redis calls under `wrangler dev`: a Redis that accepts connections and never answers
//! costs a read a bounded wait (`REDIS_TIMEOUT_MS`) and KV answers instead; and with `kv+redis`, the
//! reads of a fresh product after an early refresh are KV's alone (no Redis connection is opened:
//! counted by a Redis of the test's own, `INFO stats`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use pricefront_core::redis_protocol::{encode_command, parse_reply, Reply};
use pricefront_harness::private_redis::PrivateRedis;
use pricefront_harness::topic::published_for;
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{aged_comparison, comparison_at, now_ms, profiles, TestEnv};
use serde_json::Value;

/// A listener on 127.0.0.1 that accepts every connection, reads what it is sent and never answers;
/// its port. The connections stay open until the test process ends.
fn silent_listener() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut sink = [0u8; 1024];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// A bound on an answer that must come: far above the Redis timeout the Worker is given.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_never_answers_costs_a_bounded_wait_and_kv_still_answers() {
    let port = silent_listener().to_string();
    let worker = LocalWorker::start(
        "silent-redis",
        8831,
        &[
            ("CACHE_BACKEND", "kv+redis"),
            ("REDIS_PORT", &port),
            ("REDIS_TIMEOUT_MS", "300"),
            // Port 9 has no listener: a miss that gets that far answers 503 at once.
            ("REST_PROXY_URL", "http://127.0.0.1:9"),
        ],
    )
    .await
    .unwrap();
    let edge = worker.edge();

    // A stale entry in KV: the read asks Redis for a newer one, which never answers.
    let stale = aged_comparison(pricefront_harness::edge::unused_product(), 120_000);
    assert_eq!(edge.fill(&stale, &worker.token).await.unwrap(), 204);
    let answer = tokio::time::timeout(ANSWER_LIMIT, edge.get_prices(stale.product_id, None))
        .await
        .unwrap_or_else(|_| panic!("no answer to a stale KV read within {ANSWER_LIMIT:?}"))
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["freshness"], "stale");
    assert_eq!(body["computedAtMs"], stale.computed_at_ms);

    // A miss in KV: Redis (second tier) and the backlog check (in Redis) both time out, the miss is
    // let through, and the closed REST proxy answers it 503.
    let missing = pricefront_harness::edge::unused_product();
    let answer = tokio::time::timeout(ANSWER_LIMIT, edge.get_prices(missing, None))
        .await
        .unwrap_or_else(|_| panic!("no answer to a KV miss within {ANSWER_LIMIT:?}"))
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
}

/// Redis's count of connections it has accepted since it started, asked over `connection` (one
/// connection for every ask, so that asking counts none).
fn connections_received(connection: &mut TcpStream) -> u64 {
    let mut frame = Vec::new();
    encode_command(&mut frame, &[b"INFO", b"stats"]);
    connection.write_all(&frame).unwrap();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let info = loop {
        if let Some((Reply::Bulk(Some(info)), _)) = parse_reply(&buffer).unwrap() {
            break String::from_utf8(info).unwrap();
        }
        let read = connection.read(&mut chunk).unwrap();
        assert!(read > 0, "redis closed the connection");
        buffer.extend_from_slice(&chunk[..read]);
    };
    info.lines()
        .find_map(|line| line.strip_prefix("total_connections_received:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("INFO stats has total_connections_received")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_a_fresh_entry_after_an_early_refresh_open_no_redis_connection() {
    let env = TestEnv::new("hot-tier", profiles([]), 2_000).await.unwrap();
    let redis = PrivateRedis::start().await.unwrap();
    let port = redis.port().to_string();
    let worker = LocalWorker::start(
        "hot-tier",
        8832,
        &[
            ("CACHE_BACKEND", "kv+redis"),
            ("REDIS_PORT", &port),
            ("REQUEST_TOPIC", &env.topic),
            // Every fresh hit of a product whose fan-out took 30 s refreshes it early (the chance of
            // not doing so is below 1 in 4,000); no backlog checks (they would read Redis too).
            ("EARLY_REFRESH_BETA", "10000"),
            ("BACKLOG_MAX", "0"),
        ],
    )
    .await
    .unwrap();
    let edge = worker.edge();
    let mut fresh = comparison_at(env.product(1), now_ms(), 600_000);
    fresh.fan_out_ms = Some(30_000);
    assert_eq!(edge.fill(&fresh, &worker.token).await.unwrap(), 204);

    // The first read is a fresh hit that publishes an early refresh after its answer.
    assert_eq!(
        edge.get_prices(fresh.product_id, None)
            .await
            .unwrap()
            .status(),
        200
    );
    let deadline = tokio::time::Instant::now() + ANSWER_LIMIT;
    while published_for(&env.topic, fresh.product_id).await.unwrap() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the early refresh was not published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Within the refresh's few seconds of coalescing, 10 more reads: all fresh in KV.
    let mut connection = TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    connection.set_read_timeout(Some(ANSWER_LIMIT)).unwrap();
    let before = connections_received(&mut connection);
    for _ in 0..10 {
        let answer = edge.get_prices(fresh.product_id, None).await.unwrap();
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["freshness"], "fresh");
    }
    let opened = connections_received(&mut connection) - before;
    assert_eq!(
        opened, 0,
        "10 reads of a product fresh in KV opened {opened} Redis connections"
    );
}
