//! Where the machine's CPU goes while a closed load loop runs on one Worker: its `wrangler dev` (the
//! workerd processes apart from wrangler's node process), the gate host's, the bridge, Kafka, Redis and
//! this process (the load loop), each read from /proc before and after the loop, beside the whole
//! machine's busy time. Per request, it tells what a miss costs each part of the path, and whether the
//! machine had any CPU left.

use anyhow::Context;
use pricefront_harness::machine::CpuTimes;
use pricefront_harness::process::cpu_seconds;
use pricefront_harness::stack::stack_pid;
use pricefront_harness::worker::LocalWorker;
use tokio::time::Instant;

/// The parts measured, in the order of [`PathCpu::parts`].
pub const PARTS: [&str; 7] = [
    "its workerd",
    "its wrangler (node)",
    "the gate host's `wrangler dev`",
    "the bridge",
    "Kafka",
    "Redis",
    "the load loop",
];

/// The index of the Worker's workerd processes (its runtime and wrangler's proxy) in [`PARTS`].
pub const WORKERD: usize = 0;
/// The index of the bridge in [`PARTS`].
pub const BRIDGE: usize = 3;
/// The index of Kafka in [`PARTS`].
pub const KAFKA: usize = 4;

/// The CPU each part used during one loop, and the machine's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathCpu {
    /// CPU seconds (user + system) of each part, in [`PARTS`] order.
    pub parts: [f64; 7],
    /// CPU seconds all the machine's CPUs were busy, whoever used them.
    pub machine_busy: f64,
    /// How long the loop ran, in seconds.
    pub seconds: f64,
}

impl PathCpu {
    /// Each part's CPU per request, in ms.
    pub fn per_request_ms(&self, requests: u64) -> [f64; 7] {
        self.parts.map(|s| per_ms(s, requests))
    }

    /// The machine's busy CPU per request that no part accounts for (the other Workers, the kernel's
    /// own threads), in ms.
    pub fn rest_ms(&self, requests: u64) -> f64 {
        per_ms(
            (self.machine_busy - self.parts.iter().sum::<f64>()).max(0.0),
            requests,
        )
    }

    /// The machine's busy CPU per request, in ms.
    pub fn machine_ms(&self, requests: u64) -> f64 {
        per_ms(self.machine_busy, requests)
    }

    /// The share of the machine's `cores` that was busy (0 to 1).
    pub fn busy_share(&self, cores: usize) -> f64 {
        self.machine_busy / (self.seconds.max(0.001) * cores.max(1) as f64)
    }
}

/// `seconds` of CPU spread over `requests`, in ms each.
fn per_ms(seconds: f64, requests: u64) -> f64 {
    seconds * 1000.0 / requests.max(1) as f64
}

/// The readings taken when a loop started.
pub struct CpuMeter<'a> {
    worker: &'a LocalWorker,
    gates: Option<&'a LocalWorker>,
    bridge: Option<u32>,
    parts: [f64; 7],
    machine: CpuTimes,
    at: Instant,
}

impl<'a> CpuMeter<'a> {
    /// Reads every part now, for a loop on `worker` (whose gates, if any, run in `gates`) publishing
    /// through the bridge of process `bridge` (the stack's when `None`).
    pub fn start(
        worker: &'a LocalWorker,
        gates: Option<&'a LocalWorker>,
        bridge: Option<u32>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            worker,
            gates,
            bridge,
            parts: read_parts(worker, gates, bridge)?,
            machine: CpuTimes::now()?,
            at: Instant::now(),
        })
    }

    /// Reads every part again: what each used since [`CpuMeter::start`].
    pub fn finish(self) -> anyhow::Result<PathCpu> {
        let parts = read_parts(self.worker, self.gates, self.bridge)?;
        let machine = CpuTimes::now()?;
        Ok(PathCpu {
            parts: std::array::from_fn(|i| (parts[i] - self.parts[i]).max(0.0)),
            machine_busy: machine.busy_seconds_since(&self.machine),
            seconds: self.at.elapsed().as_secs_f64(),
        })
    }
}

/// The CPU seconds so far of each part, in [`PARTS`] order; the bridge is process `bridge`, or the
/// stack's.
fn read_parts(
    worker: &LocalWorker,
    gates: Option<&LocalWorker>,
    bridge: Option<u32>,
) -> anyhow::Result<[f64; 7]> {
    let component = |name: &str| -> anyhow::Result<f64> {
        let pid = stack_pid(name).with_context(|| format!("the stack's {name}"))?;
        Ok(cpu_seconds(pid)?)
    };
    let by_command = worker.cpu_by_command()?;
    let command = |name: &str| by_command.get(name).copied().unwrap_or(0.0);
    Ok([
        command("workerd"),
        // wrangler's node and whatever else runs in the group (esbuild, idle).
        by_command.values().sum::<f64>() - command("workerd"),
        match gates {
            Some(gates) => gates.cpu_seconds()?,
            None => 0.0,
        },
        match bridge {
            Some(pid) => cpu_seconds(pid)?,
            None => component("bridge")?,
        },
        component("kafka")?,
        component("redis")?,
        cpu_seconds(std::process::id())?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_request_figures_divide_the_seconds_and_the_rest_is_what_no_part_took() {
        let cpu = PathCpu {
            parts: [0.5, 0.5, 0.0, 2.0, 1.0, 0.0, 0.5],
            machine_busy: 5.0,
            seconds: 2.5,
        };
        assert_eq!(
            cpu.per_request_ms(1000),
            [0.5, 0.5, 0.0, 2.0, 1.0, 0.0, 0.5]
        );
        assert!((cpu.rest_ms(1000) - 0.5).abs() < 1e-9);
        assert!((cpu.machine_ms(1000) - 5.0).abs() < 1e-9);
        assert!((cpu.busy_share(2) - 1.0).abs() < 1e-9);
        // The parts read apart may add up to more than the machine's reading: no negative rest.
        let over = PathCpu {
            machine_busy: 4.0,
            ..cpu
        };
        assert_eq!(over.rest_ms(1000), 0.0);
    }
}
