//! What a Worker under `wrangler dev` keeps on this machine (`scripts/edge-dev.sh`): its Durable
//! Objects, one product gate for each product missed, each a SQLite database of wrangler's, live in
//! memory, start empty (of an earlier run's, stopped or killed) and go at stop. On disk, each new product cost a file created and synced on the
//! runtime's thread (about half the distinct misses a second, BENCHMARKS.md section 4), and no file
//! was ever removed (one drill's Worker had 41,211 of them).

use std::path::{Path, PathBuf};

use pricefront_harness::worker::LocalWorker;
use pricefront_harness::{profiles, repo_path, TestEnv};

const NAME: &str = "local-state";

/// The names of the files under `dir`, at any depth.
fn files_under(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names
}

/// Leaves a file where an earlier run's gates left theirs, on disk as they used to be.
fn an_earlier_runs_gate_file(do_dir: &PathBuf) {
    if std::fs::symlink_metadata(do_dir).is_ok_and(|m| m.file_type().is_symlink()) {
        std::fs::remove_file(do_dir).unwrap();
    }
    let gates = do_dir.join("pricefront-edge-ProductGate");
    std::fs::create_dir_all(&gates).unwrap();
    std::fs::write(gates.join("earlier.sqlite"), b"an earlier run's gate").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workers_product_gates_live_in_memory_start_empty_and_go_at_stop() {
    let env = TestEnv::new(NAME, profiles([]), 2_000).await.unwrap();
    let do_dir = repo_path(&format!(".run/wrangler-{NAME}/v3/do"));
    an_earlier_runs_gate_file(&do_dir);

    let worker = LocalWorker::start(NAME, 8833, &[("REQUEST_TOPIC", &env.topic)])
        .await
        .unwrap();
    // A miss asks its product's gate first, which starts it.
    let response = worker
        .edge()
        .get_prices(env.product(1), None)
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    let target = std::fs::read_link(&do_dir)
        .unwrap_or_else(|e| panic!("{} is not a link to memory: {e}", do_dir.display()));
    assert!(
        target.starts_with("/dev/shm"),
        "the gates live in {}, not in memory",
        target.display()
    );
    let files = files_under(&target);
    assert!(
        !files.iter().any(|name| name == "earlier.sqlite"),
        "an earlier run's gate is still there: {files:?}"
    );
    assert!(
        files
            .iter()
            .any(|name| name.ends_with(".sqlite") && name != "metadata.sqlite"),
        "no gate's database in {}: {files:?}",
        target.display()
    );

    worker.stop().unwrap();
    assert!(!target.exists(), "{} outlived its Worker", target.display());

    // A run that never reached its stop (killed) leaves its gates in memory: the next start empties them.
    let crashed = target.join("pricefront-edge-ProductGate");
    std::fs::create_dir_all(&crashed).unwrap();
    std::fs::write(crashed.join("crashed.sqlite"), b"a killed run's gate").unwrap();
    let worker = LocalWorker::start(NAME, 8833, &[("REQUEST_TOPIC", &env.topic)])
        .await
        .unwrap();
    let files = files_under(&target);
    assert!(
        !files.iter().any(|name| name == "crashed.sqlite"),
        "a killed run's gate is still there: {files:?}"
    );
    worker.stop().unwrap();
}
