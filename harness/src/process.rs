//! What a process (a consumer, the benchmark's peer, a Worker's process group) has used: its memory and
//! CPU time, from /proc.

use std::collections::BTreeMap;
use std::process::Command;

use crate::HarnessError;

/// A process's resident memory, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// The peak (`VmHWM`).
    pub peak_kib: u64,
    /// Now (`VmRSS`).
    pub current_kib: u64,
    /// Now, the part mapped from files (`RssFile`): the program's and its libraries' code and read-only
    /// data, paged in as they run, which stays resident once read.
    pub files_kib: u64,
}

/// The peak and current resident memory of the process `pid` (`VmHWM`, `VmRSS`, `RssFile` of
/// /proc/PID/status).
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
        files_kib: field("RssFile:")?,
    })
}

/// The CPU time a process has used, in seconds: in its own code (user) and in the kernel on its behalf
/// (system: its syscalls, and for loopback TCP the delivery of what it sends).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuSplit {
    /// User time (`utime`).
    pub user: f64,
    /// System time (`stime`).
    pub system: f64,
}

impl CpuSplit {
    /// User + system.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// The user and system CPU seconds the process `pid` has used so far (`/proc/PID/stat` utime and stime
/// over the clock tick).
pub fn cpu_split(pid: u32) -> Result<CpuSplit, HarnessError> {
    let path = format!("/proc/{pid}/stat");
    let stat =
        std::fs::read_to_string(&path).map_err(HarnessError::io(format!("reading {path}")))?;
    let fields = stat_fields(&stat);
    match (tick_field(&fields, UTIME), tick_field(&fields, STIME)) {
        (Some(user), Some(system)) => {
            let tick = clock_ticks_per_second();
            Ok(CpuSplit {
                user: user / tick,
                system: system / tick,
            })
        }
        _ => Err(HarnessError::Process(format!("{path} has no utime/stime"))),
    }
}

/// CPU seconds (user + sys) the process `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64, HarnessError> {
    cpu_split(pid).map(|split| split.total())
}

/// CPU seconds (user + sys) used so far by the running processes of the process group `pgid`: a Worker
/// under `wrangler dev` is its node process and the two workerd it started, all in one group.
pub fn group_cpu_seconds(pgid: u32) -> Result<f64, HarnessError> {
    Ok(group_cpu_by_command(pgid)?.values().sum())
}

/// [`group_cpu_seconds`] by command name (`/proc/PID/stat`'s comm: `node`, `workerd`, ...), each
/// name's processes summed.
pub fn group_cpu_by_command(pgid: u32) -> Result<BTreeMap<String, f64>, HarnessError> {
    let entries = std::fs::read_dir("/proc").map_err(HarnessError::io("listing /proc"))?;
    let tick = clock_ticks_per_second();
    let mut by_command = BTreeMap::new();
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
        let ticks =
            tick_field(&fields, UTIME).unwrap_or(0.0) + tick_field(&fields, STIME).unwrap_or(0.0);
        *by_command
            .entry(command_of(&stat).to_owned())
            .or_insert(0.0) += ticks / tick;
    }
    Ok(by_command)
}

/// The command name of a `/proc/PID/stat` line: field 2, between its parentheses.
fn command_of(stat: &str) -> &str {
    match (stat.find('('), stat.rfind(')')) {
        (Some(open), Some(close)) if open < close => &stat[open + 1..close],
        _ => "",
    }
}

/// Indexes in [`stat_fields`] (`man 5 proc`: pgrp, utime and stime are fields 5, 14 and 15; the list
/// starts at field 3).
const PGRP: usize = 2;
const UTIME: usize = 11;
const STIME: usize = 12;

/// A process that keeps one CPU busy (a shell loop pinned with `taskset`) until dropped: what a noisy
/// neighbour or a CPU quota does to a process kept to that CPU.
#[derive(Debug)]
pub struct CpuHog {
    child: std::process::Child,
}

impl CpuHog {
    /// Starts keeping the CPU `cpu` busy.
    pub fn start(cpu: usize) -> Result<Self, HarnessError> {
        let child = Command::new("taskset")
            .args(["-c", &cpu.to_string(), "sh", "-c", "while :; do :; done"])
            .spawn()
            .map_err(HarnessError::io("starting a busy loop with taskset"))?;
        Ok(Self { child })
    }
}

impl Drop for CpuHog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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

/// The kernel's clock ticks per second (`getconf CLK_TCK`, 100 on Linux), the unit of /proc's CPU
/// times.
pub(crate) fn clock_ticks_per_second() -> f64 {
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
    fn the_memory_mapped_from_files_is_part_of_the_resident_memory() {
        let memory = memory(std::process::id()).expect("this process's memory");
        // This test's own code is mapped from its binary, and resident while it runs.
        assert!(memory.files_kib > 0, "{memory:?}");
        assert!(memory.files_kib <= memory.current_kib, "{memory:?}");
        assert!(memory.current_kib <= memory.peak_kib, "{memory:?}");
    }

    #[test]
    fn a_process_group_has_used_at_least_what_one_of_its_processes_has() {
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let group: u32 = stat_fields(&own)[PGRP].parse().unwrap();
        let mine = cpu_seconds(std::process::id()).unwrap();
        assert!(group_cpu_seconds(group).unwrap() >= mine);
    }

    #[test]
    fn a_command_name_is_read_whole_even_with_spaces_and_parentheses() {
        assert_eq!(command_of("41 (workerd) S 1 41 41 0"), "workerd");
        assert_eq!(command_of("42 (my (odd) name) R 1 42"), "my (odd) name");
        assert_eq!(command_of("no parentheses"), "");
        let own = std::fs::read_to_string("/proc/self/stat").unwrap();
        let group: u32 = stat_fields(&own)[PGRP].parse().unwrap();
        let by_command = group_cpu_by_command(group).unwrap();
        assert!(by_command.contains_key(command_of(&own)), "{by_command:?}");
    }

    #[test]
    fn a_cpu_hog_keeps_its_cpu_busy_until_dropped() {
        let hog = CpuHog::start(0).unwrap();
        let pid = hog.child.id();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(cpu_seconds(pid).unwrap() > 0.0);
        drop(hog);
        assert!(
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_err(),
            "the busy loop is gone"
        );
    }

    #[test]
    fn a_busy_process_has_user_time_and_its_split_adds_up_to_its_cpu_seconds() {
        let before = cpu_split(std::process::id()).unwrap();
        // Busy in user space for a few clock ticks.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = cpu_split(std::process::id()).unwrap();
        assert!(after.user > before.user, "{before:?} then {after:?}");
        assert!(after.system >= before.system);
        let total = cpu_seconds(std::process::id()).unwrap();
        assert!(total >= after.total());
    }
}
