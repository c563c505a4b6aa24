//! One trace from the edge to the vendors (W3C Trace Context): a client's `traceparent` is continued
//! by the edge (and named back in `traceresponse`), carried through the Strimzi Kafka Bridge as a
//! record header, continued by the consumer's spans (exported over OTLP to a receiver of this test),
//! and sent on to every vendor (the simulator records the headers it receives).

use std::time::Duration;

use pricefront_core::{PriceRequest, ProductId, TraceContext};
use pricefront_harness::otlp::{OtlpReceiver, ReceivedSpan};
use pricefront_harness::topic::records_with_key;
use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{profiles, TestEnv};
use vendor_sim::{BodyShape, VendorProfile};

const CLIENT_TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

fn three_vendors() -> vendor_sim::Profiles {
    let vendor = VendorProfile {
        latency_min_ms: 5,
        latency_max_ms: 20,
        shape: BodyShape::Flat,
        ..VendorProfile::default()
    };
    profiles([
        ("alpha", vendor.clone()),
        ("bravo", vendor.clone()),
        ("charlie", vendor),
    ])
}

/// Waits up to 30 s for `ready` to give `Some`.
async fn eventually<T>(what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `traceparent`s the simulator received for `product`, once each of `vendors` was asked.
async fn vendor_traceparents(
    env: &TestEnv,
    product: ProductId,
    vendors: usize,
) -> Vec<TraceContext> {
    let seen = eventually("every vendor to be asked", || {
        let seen = env.simulator.traceparents_of(&product.to_string());
        (seen.len() >= vendors).then_some(seen)
    })
    .await;
    seen.iter()
        .map(|header| TraceContext::parse(header).expect("a valid traceparent"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traced_read_is_one_trace_from_the_edge_through_kafka_to_every_vendor() {
    let receiver = OtlpReceiver::start().await.unwrap();
    let env = TestEnv::new("trace", three_vendors(), 2_000).await.unwrap();
    let _consumer = env
        .start_consumer_with_env("traced", &[], &receiver.exporter_env())
        .unwrap();
    let worker = LocalWorker::start(
        "trace",
        8806,
        &[
            ("REQUEST_TOPIC", env.topic.as_str()),
            ("REST_PROXY_RECORD_HEADERS", "true"),
        ],
    )
    .await
    .unwrap();
    let product = env.product(1);

    let response = worker
        .edge()
        .get_prices_with_header(product, "traceparent", CLIENT_TRACEPARENT)
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let edge_span = TraceContext::parse(
        response.headers()["traceresponse"]
            .to_str()
            .expect("an ASCII traceresponse"),
    )
    .expect("a valid traceresponse");
    assert_eq!(
        edge_span.trace_id_hex(),
        TRACE_ID,
        "the edge continues the client's trace"
    );
    assert_ne!(
        edge_span.span_id_hex(),
        "b7ad6b7169203331",
        "the edge's own span"
    );

    // The bridge carried the edge's span as a record header.
    let (topic, key) = (env.topic.clone(), product.to_string());
    let records = tokio::task::spawn_blocking(move || {
        records_with_key(&pricefront_harness::brokers(), &topic, key.as_bytes())
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].header("traceparent"),
        Some(edge_span.to_string()),
        "the record header names the edge's span"
    );

    let asked = vendor_traceparents(&env, product, 3).await;
    assert!(
        asked
            .iter()
            .all(|context| context.trace_id_hex() == TRACE_ID),
        "every vendor call carries the trace: {asked:?}"
    );

    let spans = eventually("the consumer's spans", || {
        let spans = receiver.spans_of_trace(TRACE_ID);
        (spans.iter().filter(|s| s.name == "vendor").count() >= 3
            && spans.iter().any(|s| s.name == "request"))
        .then_some(spans)
    })
    .await;
    let named =
        |name: &str| -> Vec<&ReceivedSpan> { spans.iter().filter(|s| s.name == name).collect() };
    let request = named("request")[0];
    assert_eq!(
        request.parent_span_id,
        edge_span.span_id_hex(),
        "the consumer's request span is a child of the edge's span"
    );
    let compare = named("compare")[0];
    assert_eq!(compare.parent_span_id, request.span_id);
    let vendor_spans: Vec<String> = named("vendor").iter().map(|s| s.span_id.clone()).collect();
    for call in &asked {
        assert!(
            vendor_spans.contains(&call.span_id_hex()),
            "a vendor call names its exported span as the parent: {call} not in {vendor_spans:?}"
        );
    }
    assert!(named("vendor")
        .iter()
        .all(|s| s.parent_span_id == compare.span_id));
    worker.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_in_the_message_alone_reaches_the_vendors_and_a_bad_one_starts_a_new_trace() {
    // What a proxy without record headers (Confluent's v2) delivers: the traceparent in the message.
    let env = TestEnv::new("trace-message", three_vendors(), 2_000)
        .await
        .unwrap();
    let _consumer = env.start_consumer("untraced-export", &[]).unwrap();
    let (traced, garbled) = (env.product(1), env.product(2));
    let message = |product: ProductId, traceparent: &str| {
        format!(
            r#"{{"v":1,"productId":"{product}","requestId":"r-{product}","requestedAtMs":1,"traceparent":"{traceparent}"}}"#
        )
    };
    for (product, traceparent) in [(traced, CLIENT_TRACEPARENT), (garbled, "not-a-traceparent")] {
        env.publish_raw(
            product.to_string().as_bytes(),
            message(product, traceparent).as_bytes(),
        )
        .await
        .unwrap();
    }
    // Spans are not recorded here (no OTLP endpoint): the ids are drawn without them, and still each
    // vendor call is a hop of its own under the client's trace.
    let asked = vendor_traceparents(&env, traced, 3).await;
    assert!(asked
        .iter()
        .all(|context| context.trace_id_hex() == TRACE_ID));
    let client_span = TraceContext::parse(CLIENT_TRACEPARENT).unwrap().span_id;
    let mut spans: Vec<_> = asked.iter().map(|context| context.span_id).collect();
    spans.sort_unstable();
    spans.dedup();
    assert_eq!(spans.len(), 3, "one span id per vendor call: {asked:?}");
    assert!(!spans.contains(&client_span), "{asked:?}");
    // Not dead-lettered: compared under a trace of its own, one for the whole comparison.
    let fresh = vendor_traceparents(&env, garbled, 3).await;
    assert!(
        fresh
            .iter()
            .all(|context| context.trace_id_hex() != TRACE_ID
                && context.trace_id == fresh[0].trace_id)
    );
    assert_eq!(
        env.wait_for_results(&[garbled], Duration::from_secs(30))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_header_trace_wins_over_the_one_in_the_message() {
    // A consumer that read only the message's field would pass the test above: both name the edge's
    // span there. Here they name two different traces.
    const HEADER_TRACE: &str = "11111111111111111111111111111111";
    const MESSAGE_TRACE: &str = "22222222222222222222222222222222";
    let env = TestEnv::new("trace-header", three_vendors(), 2_000)
        .await
        .unwrap();
    let _consumer = env.start_consumer("traced", &[]).unwrap();
    let product = env.product(1);
    let request = PriceRequest::new(product, "trace-header-test", pricefront_harness::now_ms())
        .with_traceparent(format!("00-{MESSAGE_TRACE}-2222222222222222-01"));
    let header = format!("00-{HEADER_TRACE}-1111111111111111-01");
    env.publish_with_headers(
        request.kafka_key().as_bytes(),
        request.to_json().as_bytes(),
        &[("traceparent", header.as_str())],
    )
    .await
    .unwrap();
    let asked = vendor_traceparents(&env, product, 3).await;
    assert!(
        asked
            .iter()
            .all(|context| context.trace_id_hex() == HEADER_TRACE),
        "every vendor call carries the record header's trace, not the message's: {asked:?}"
    );
}
