//! The reliability drills as tests, with assertions on lost = 0 (every drill must count it) and on the
//! drill's verdict (no 5xx from the Worker's own code; the runtime's answers to requests that break HTTP
//! itself are listed apart in the edge drill's notes). They
//! restart shared services: run them alone and one at a time, with the stack up and a Worker at
//! `$EDGE_KV_URL` (token `$EDGE_FILL_TOKEN`):
//!
//! ```sh
//! cargo build -p pricefront-consumer
//! cargo test -p pricefront-drills -- --test-threads 1
//! ```

use pricefront_drills::{
    below_isr, early_refresh, edge_input, flood, kafka_restart, kill_consumer, leader_kill,
    redis_restart, rest_proxy, rolling_restart, starved_consumer, vendor_down, vendor_faults,
    DrillReport, Verdict,
};

fn assert_passed(report: &DrillReport) {
    println!("{}", report.details());
    assert_eq!(
        report.lost,
        Some(0),
        "a drill must count what it lost: {}",
        report.details()
    );
    assert_eq!(report.verdict(), Verdict::Passed, "{}", report.details());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_consumer_of_two_loses_nothing() {
    let report = kill_consumer::run(&kill_consumer::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_broker_restart_loses_nothing_and_the_consumer_recovers() {
    let report = kafka_restart::run(&kafka_restart::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing() {
    let report = redis_restart::run(&redis_restart::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_short_of_cpu_opens_no_circuit_of_a_healthy_vendor_and_loses_nothing() {
    let report = starved_consumer::run(&starved_consumer::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_vendors_still_give_a_stored_result_for_every_request() {
    let report = vendor_faults::run(&vendor_faults::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_vendor_down_opens_its_circuit_the_others_keep_answering_and_it_closes_once_back() {
    let report = vendor_down::run(&vendor_down::Plan::short())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_the_worker_sees_never_gets_a_5xx_always_a_problem_and_loses_nothing() {
    let target = edge_input::Target::from_env().expect("the drill needs a Worker");
    let report = edge_input::run(&target, &edge_input::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_rest_proxy_gives_503s_then_recovers_and_loses_no_accepted_miss() {
    let edge = pricefront_harness::edge::Edge::from_env("EDGE_KV_URL")
        .expect("the drill needs the KV-backed Worker of scripts/test.sh");
    let report = rest_proxy::run(&edge, &rest_proxy::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refreshes_keep_the_hottest_products_from_going_stale() {
    let report = early_refresh::run(&early_refresh::Plan::short())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_ids_is_turned_away_without_publishing_and_loses_no_legitimate_request()
{
    let report = flood::run(&flood::Plan::short())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

// The cluster's drills: the three-node cluster that scripts/test.sh starts beside the stack.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_of_the_busiest_partition_loses_no_acknowledged_request() {
    let report = leader_kill::run(&leader_kill::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_the_cluster_loses_nothing_and_the_edge_only_answers_202_or_503() {
    let report = rolling_restart::run(&rolling_restart::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_min_insync_replicas_the_edge_answers_503_and_recovers_by_itself_once_a_node_is_back()
{
    let report = below_isr::run(&below_isr::Plan::default())
        .await
        .expect("the drill could not run");
    assert_passed(&report);
}
