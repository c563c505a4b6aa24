//! What a process (a consumer, the benchmark's peer) has used: its memory and CPU time, from /proc.

use std::process::Command;

use crate::HarnessError;

/// A process's resident memory, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// The peak (`VmHWM`).
    pub peak_kib: u64,
    /// Now (`VmRSS`).
    pub current_kib: u64,
}

/// The peak and current resident memory of the process `pid` (`VmHWM`, `VmRSS` of /proc/PID/status).
pub fn memory(pid: u32) -> Result<Memory, HarnessError> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(HarnessError::io(format!("reading {path}")))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .ok_or_else(|| HarnessError::Process(format!("{path} has no {name}")))
    };
    Ok(Memory {
        peak_kib: field("VmHWM:")?,
        current_kib: field("VmRSS:")?,
    })
}

/// CPU seconds (user + sys) the process `pid` has used so far (`/proc/PID/stat` utime + stime over the
/// clock tick).
pub fn cpu_seconds(pid: u32) -> Result<f64, HarnessError> {
    let path = format!("/proc/{pid}/stat");
    let stat =
        std::fs::read_to_string(&path).map_err(HarnessError::io(format!("reading {path}")))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15; the list starts at field 3.
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) / clock_ticks_per_second()),
        _ => Err(HarnessError::Process(format!("{path} has no utime/stime"))),
    }
}

/// `getconf CLK_TCK`, the unit of `/proc/PID/stat` times (100 on Linux).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
