//! An edge Worker under `wrangler dev`, started by a test, benchmark or drill with its own settings
//! (`scripts/edge-dev.sh`, with the already built Worker) and stopped when dropped.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use crate::edge::Edge;
use crate::{repo_path, HarnessError};

/// Why a Worker could not be started or stopped.
#[derive(Debug, thiserror::Error)]
#[error("scripts/edge-dev.sh {action} {name} failed: {detail}")]
pub struct WorkerError {
    action: &'static str,
    name: String,
    detail: String,
}

/// The level of wrangler's own log for the Workers the harness starts (`make dev` keeps `info`).
pub const WRANGLER_LOG_LEVEL: &str = "warn";

/// The gate host's `wrangler.toml`, relative to the repository.
const GATE_HOST_CONFIG: &str = "harness/workers/gate-host.toml";

/// The gate fronts' `wrangler.toml`, relative to the repository.
const GATE_FRONT_CONFIG: &str = "harness/workers/gate-front.toml";

/// How far above a Worker's HTTP port `scripts/edge-dev.sh` puts its inspector.
const INSPECTOR_PORT_OFFSET: u16 = 1000;

/// Whether a Worker's `wrangler dev` runs the runtime's inspector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inspector {
    /// The wrangler CLI, as `make dev` and the tests run it: the inspector on (1,000 above the HTTP
    /// port), which the hit path's isolate profile reads.
    On,
    /// Wrangler's API with no inspector (`scripts/wrangler-dev-api.mjs`), as a deployed Worker runs:
    /// the CLI's inspector makes workerd and wrangler's node process handle several events for every
    /// `fetch` the Worker makes, such as each publish of a miss. The benchmarks of the publish path and
    /// the drills that load the edge use it.
    Off,
}

impl Inspector {
    /// The arguments that ask `scripts/edge-dev.sh` for it.
    pub fn args(self) -> &'static [&'static str] {
        match self {
            Inspector::On => &[],
            Inspector::Off => &["--no-inspector"],
        }
    }
}

/// A Worker this process started; stopped on drop.
#[derive(Debug)]
pub struct LocalWorker {
    name: String,
    /// Its HTTP port on 127.0.0.1.
    port: u16,
    /// Its base URL.
    pub base: String,
    /// The fill token it was started with.
    pub token: String,
}

impl LocalWorker {
    /// Starts the Worker named `name` on 127.0.0.1:`port` with a fresh random fill token and the given
    /// `vars` (`NAME`, `value`), and waits until it answers (the script waits up to 180 s).
    /// Every client of a test is 127.0.0.1, so the per-client miss limit is off unless `vars` set
    /// `MISS_RATE_LIMIT_KEY`.
    pub async fn start(name: &str, port: u16, vars: &[(&str, &str)]) -> Result<Self, WorkerError> {
        Self::start_with(name, port, vars, Inspector::On).await
    }

    /// Like [`LocalWorker::start`], with or without the runtime's inspector.
    pub async fn start_with(
        name: &str,
        port: u16,
        vars: &[(&str, &str)],
        inspector: Inspector,
    ) -> Result<Self, WorkerError> {
        Self::start_from(name, port, vars, None, inspector.args()).await
    }

    /// Like [`LocalWorker::start`], for the Worker that `config` (a `wrangler.toml`, relative to the
    /// repository) describes instead of the edge (a benchmark's peer Worker, a Worker bound to another's
    /// product gates), with extra arguments for `wrangler dev` (`--name`, say).
    pub async fn start_from(
        name: &str,
        port: u16,
        vars: &[(&str, &str)],
        config: Option<&str>,
        args: &[&str],
    ) -> Result<Self, WorkerError> {
        let error = |detail: String| WorkerError {
            action: "start",
            name: name.to_owned(),
            detail,
        };
        let token = random_token().map_err(|e| error(e.to_string()))?;
        let mut command = tokio::process::Command::new(repo_path("scripts/edge-dev.sh"));
        command.args(["start", name, &port.to_string()]);
        command.arg("--var").arg(format!("FILL_TOKEN:{token}"));
        // wrangler's line per request costs its node process about 0.7 ms of CPU a request on this
        // machine (about a quarter of what the Worker and wrangler's proxy in front of it spend on a
        // `/healthz`), taken from the same cores as everything measured; nothing reads those lines (the
        // harness reads `/metrics`). The Worker's own warnings and errors still reach the log.
        command.args(["--log-level", WRANGLER_LOG_LEVEL]);
        if !vars.iter().any(|(key, _)| *key == "MISS_RATE_LIMIT_KEY") {
            command.arg("--var").arg("MISS_RATE_LIMIT_KEY:off");
        }
        for (key, value) in vars {
            command.arg("--var").arg(format!("{key}:{value}"));
        }
        if let Some(config) = config {
            command.arg("--config").arg(repo_path(config));
        }
        command.args(args);
        let output = command
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| error(e.to_string()))?;
        if !output.status.success() {
            return Err(error(format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(Self {
            name: name.to_owned(),
            port,
            base: format!("http://127.0.0.1:{port}"),
            token,
        })
    }

    /// The Worker that hosts the product gates of the fronts started with
    /// [`LocalWorker::start_gate_front`] (`harness/workers/gate-host.toml`), in a process of its own: as
    /// in production, every front's misses and fills reach the same gates (one Durable Object namespace),
    /// and the gates can be restarted while the fronts run. One at a time (wrangler dev's registry knows
    /// the gate host by its name).
    pub async fn start_gate_host(port: u16) -> Result<Self, WorkerError> {
        Self::start_gate_host_with(port, Inspector::On).await
    }

    /// Like [`LocalWorker::start_gate_host`], with or without the runtime's inspector.
    pub async fn start_gate_host_with(
        port: u16,
        inspector: Inspector,
    ) -> Result<Self, WorkerError> {
        Self::start_from(
            "gate-host",
            port,
            &[],
            Some(GATE_HOST_CONFIG),
            inspector.args(),
        )
        .await
    }

    /// An edge Worker named `name` on its own local KV whose product gates are the gate host's
    /// (`harness/workers/gate-front.toml`), with `vars`.
    pub async fn start_gate_front(
        name: &str,
        port: u16,
        vars: &[(&str, &str)],
    ) -> Result<Self, WorkerError> {
        Self::start_gate_front_with(name, port, vars, Inspector::On).await
    }

    /// Like [`LocalWorker::start_gate_front`], with or without the runtime's inspector.
    pub async fn start_gate_front_with(
        name: &str,
        port: u16,
        vars: &[(&str, &str)],
        inspector: Inspector,
    ) -> Result<Self, WorkerError> {
        let worker_name = format!("pricefront-gate-{name}");
        let mut args = vec!["--name", &worker_name];
        args.extend(inspector.args());
        Self::start_from(name, port, vars, Some(GATE_FRONT_CONFIG), &args).await
    }

    /// A client of this Worker.
    pub fn edge(&self) -> Edge {
        Edge::at(self.base.clone())
    }

    /// The port of its inspector (the Chrome DevTools Protocol), which `scripts/edge-dev.sh` puts 1,000
    /// above its HTTP port.
    pub fn inspector_port(&self) -> u16 {
        self.port + INSPECTOR_PORT_OFFSET
    }

    /// CPU seconds (user + sys) its `wrangler dev` has used so far: the node process and the two
    /// workerd (wrangler's proxy and the Worker's runtime), one process group (`scripts/edge-dev.sh`
    /// starts it in a session of its own and writes its pid, the group's id, first in its pid file).
    pub fn cpu_seconds(&self) -> Result<f64, HarnessError> {
        crate::process::group_cpu_seconds(self.process_group()?)
    }

    /// [`LocalWorker::cpu_seconds`] by command: `workerd` (the Worker's runtime and wrangler's proxy in
    /// front of it) and `node` (wrangler itself, which relays the runtime's inspector events, a few for
    /// each `fetch` the Worker makes, and appends each to its debug log).
    pub fn cpu_by_command(&self) -> Result<BTreeMap<String, f64>, HarnessError> {
        crate::process::group_cpu_by_command(self.process_group()?)
    }

    /// Its `wrangler dev`'s process group: the pid `scripts/edge-dev.sh` wrote first in its pid file.
    fn process_group(&self) -> Result<u32, HarnessError> {
        crate::stack::pid_in_file(&repo_path(&format!(".run/pids/edge-{}.pid", self.name)))
    }

    /// Stops the Worker.
    pub fn stop(&self) -> Result<(), WorkerError> {
        let status = Command::new(repo_path("scripts/edge-dev.sh"))
            .args(["stop", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => Ok(()),
            other => Err(WorkerError {
                action: "stop",
                name: self.name.clone(),
                detail: format!("{other:?}"),
            }),
        }
    }
}

impl Drop for LocalWorker {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// 16 random bytes from the kernel, in hex.
fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
