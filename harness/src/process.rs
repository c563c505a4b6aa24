//! What a process (a consumer, the benchmark's peer, a Worker's process group) has used: its memory and
//! CPU time, from /proc.

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
    let fields = stat_fields(&stat);
    match (tick_field(&fields, UTIME), tick_field(&fields, STIME)) {
        (Some(user), Some(system)) => Ok((user + system) / clock_ticks_per_second()),
        _ => Err(HarnessError::Process(format!("{path} has no utime/stime"))),
    }
}

/// CPU seconds (user + sys) used so far by the running processes of the process group `pgid`: a Worker
/// under `wrangler dev` is its node process and the two workerd it started, all in one group.
pub fn group_cpu_seconds(pgid: u32) -> Result<f64, HarnessError> {
    let entries = std::fs::read_dir("/proc").map_err(HarnessError::io("listing /proc"))?;
    let mut ticks = 0.0;
    for entry in entries.flatten() {
        // Only the numbered entries are processes ("self" would count this one twice).
        if entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
            .is_none()
        {
            continue;
        }
        // A process that ended meanwhile is simply not counted.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let fields = stat_fields(&stat);
        if fields.get(PGRP).and_then(|g| g.parse::<u32>().ok()) != Some(pgid) {
            continue;
        }
        ticks +=
            tick_field(&fields, UTIME).unwrap_or(0.0) + tick_field(&fields, STIME).unwrap_or(0.0);
    }
    Ok(ticks / clock_ticks_per_second())
}

/// Indexes in [`stat_fields`] (`man 5 proc`: pgrp, utime and stime are fields 5, 14 and 15; the list
/// starts at field 3).
const PGRP: usize = 2;
const UTIME: usize = 11;
const STIME: usize = 12;

/// The fields of a `/proc/PID/stat` line after the command name, which is in parentheses and may hold
/// spaces.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

fn tick_field(fields: &[&str], index: usize) -> Option<f64> {
    fields.get(index)?.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_group_has_used_at_least_what_one_of_its_processes_has() {
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let group: u32 = stat_fields(&own)[PGRP].parse().unwrap();
        let mine = cpu_seconds(std::process::id()).unwrap();
        assert!(group_cpu_seconds(group).unwrap() >= mine);
    }
}
