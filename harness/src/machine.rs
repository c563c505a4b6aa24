//! The machine a benchmark or drill ran on, as its report describes it.

use std::fmt::Write as _;
use std::time::Duration;

use crate::HarnessError;

/// The machine the process runs on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// Total memory in MiB (`MemTotal` of /proc/meminfo).
    pub memory_mib: u64,
    /// The CPU model, when /proc/cpuinfo names it.
    pub cpu_model: Option<String>,
    /// The kernel release.
    pub kernel: Option<String>,
}

impl Machine {
    /// Reads the machine's figures from the system (Linux).
    pub fn current() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|rest| rest.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            });
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_mib: memory_kib / 1024,
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|k| k.trim().to_owned()),
        }
    }

    /// One line: `2 CPUs (nproc), 23.5 GiB memory, model, Linux 6.1`.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} CPUs (nproc), {:.1} GiB memory",
            self.cpus,
            self.memory_gib()
        );
        if let Some(model) = &self.cpu_model {
            let _ = write!(text, ", {model}");
        }
        if let Some(kernel) = &self.kernel {
            let _ = write!(text, ", Linux {kernel}");
        }
        text
    }

    /// The memory in GiB.
    pub fn memory_gib(&self) -> f64 {
        self.memory_mib as f64 / 1024.0
    }
}

/// The whole machine's CPU time so far (the `cpu` line of /proc/stat, in clock ticks): read before
/// and after a run, it tells how busy all the CPUs were meanwhile, whoever used them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// Ticks spent on anything but idle and I/O wait.
    pub busy: u64,
    /// All ticks, over all CPUs.
    pub total: u64,
}

impl CpuTimes {
    /// The machine's CPU times now.
    pub fn now() -> Result<Self, HarnessError> {
        let stat = std::fs::read_to_string("/proc/stat")
            .map_err(HarnessError::io("reading /proc/stat"))?;
        stat.lines()
            .find_map(|line| line.strip_prefix("cpu "))
            .and_then(Self::parse)
            .ok_or_else(|| HarnessError::Process("/proc/stat has no cpu line".into()))
    }

    /// The times of a `cpu` line's values (user nice system idle iowait irq softirq steal ...; guest
    /// time is already in user).
    fn parse(values: &str) -> Option<Self> {
        let ticks: Vec<u64> = values
            .split_whitespace()
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let total: u64 = ticks.iter().sum();
        let idle = ticks.get(3)? + ticks.get(4)?;
        Some(Self {
            busy: total - idle,
            total,
        })
    }

    /// The CPU seconds all the CPUs were busy between `earlier` and this reading, whoever used them.
    pub fn busy_seconds_since(&self, earlier: &CpuTimes) -> f64 {
        self.busy.saturating_sub(earlier.busy) as f64 / crate::process::clock_ticks_per_second()
    }

    /// The share of all the CPUs' time that was busy between `earlier` and this reading (0 to 1).
    pub fn busy_share_since(&self, earlier: &CpuTimes) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.busy.saturating_sub(earlier.busy) as f64 / total as f64
    }
}

/// How a [`wait_until_quiet`] ended: how long it waited, and the machine's busy share over its last
/// window (0 to 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quiet {
    /// From the call until the machine was quiet, or until the limit.
    pub waited: Duration,
    /// The busy share of the last window read.
    pub busy: f64,
    /// Whether the machine was quiet (false: the limit came first).
    pub reached: bool,
}

/// Waits, up to `limit`, until all the CPUs were less than `busy_below` busy (0 to 1) over a whole
/// `window`: so that a measurement does not begin inside the work another left behind (a broker's
/// clean-up after the run before it, a JIT, a collector).
pub async fn wait_until_quiet(
    busy_below: f64,
    window: Duration,
    limit: Duration,
) -> Result<Quiet, HarnessError> {
    let started = tokio::time::Instant::now();
    loop {
        let before = CpuTimes::now()?;
        tokio::time::sleep(window).await;
        let busy = CpuTimes::now()?.busy_share_since(&before);
        let waited = started.elapsed();
        let reached = busy < busy_below;
        if reached || waited >= limit {
            return Ok(Quiet {
                waited,
                busy,
                reached,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{wait_until_quiet, CpuTimes};

    #[test]
    fn busy_share_counts_idle_and_io_wait_as_not_busy() {
        let before = CpuTimes::parse("100 0 50 800 50 0 0 0 0 0").unwrap();
        let after = CpuTimes::parse("250 0 100 900 50 0 0 0 0 0").unwrap();
        assert_eq!(before.busy, 150);
        assert_eq!(before.total, 1000);
        // 200 busy ticks of 300.
        assert!((after.busy_share_since(&before) - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(before.busy_share_since(&before), 0.0);
    }

    #[tokio::test]
    async fn the_wait_for_a_quiet_machine_ends_when_quiet_or_at_its_limit() {
        let window = Duration::from_millis(50);
        // Every share is under 101%: quiet after one window.
        let quiet = wait_until_quiet(1.01, window, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            quiet.reached && quiet.waited < Duration::from_secs(5),
            "{quiet:?}"
        );
        // None is under 0%: the limit ends it, said so.
        let limit = Duration::from_millis(200);
        let never = wait_until_quiet(0.0, window, limit).await.unwrap();
        assert!(!never.reached && never.waited >= limit, "{never:?}");
    }
}
