//! The machine a benchmark or drill ran on, as its report describes it.

use std::fmt::Write as _;

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
