//! The fill benchmark's process figures (CPU seconds per 1,000 results, peak memory), read from /proc the
//! same way for ours and the peer, and never made up: a reading that fails fails the run, on either side,
//! instead of printing 0.00 CPU s or 0 MiB for one of them (or charging the peer's whole life to its fill).

use pricefront_harness::process::{cpu_seconds, memory, Memory};
use pricefront_harness::HarnessError;

/// Where a process's figures come from: [`Proc`] in the benchmark, a stand-in in tests.
pub trait ProcSource {
    /// CPU seconds (user + sys) the process `pid` has used so far.
    fn cpu_seconds(&self, pid: u32) -> Result<f64, HarnessError>;
    /// The process's resident memory: its peak, and now what of it is mapped from files.
    fn memory(&self, pid: u32) -> Result<Memory, HarnessError>;
}

/// The figures of a live process, from `/proc/PID/stat` and `/proc/PID/status`.
pub struct Proc;

impl ProcSource for Proc {
    fn cpu_seconds(&self, pid: u32) -> Result<f64, HarnessError> {
        cpu_seconds(pid)
    }

    fn memory(&self, pid: u32) -> Result<Memory, HarnessError> {
        memory(pid)
    }
}

/// Why a consumer's process figures could not be read; the run fails with it.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// /proc could not tell the process's CPU time at one of the readings.
    #[error("{side} (pid {pid}): reading its CPU time {at}: {source}")]
    Cpu {
        /// Which consumer: ours or the peer, and its run.
        side: String,
        /// The process.
        pid: u32,
        /// Which reading: at the first stored result, or at the end.
        at: &'static str,
        /// What /proc answered.
        #[source]
        source: HarnessError,
    },
    /// /proc could not tell the process's peak memory.
    #[error("{side} (pid {pid}): reading its peak memory: {source}")]
    Memory {
        /// Which consumer.
        side: String,
        /// The process.
        pid: u32,
        /// What /proc answered.
        #[source]
        source: HarnessError,
    },
    /// The end's CPU time is below the first result's: not the same process, or not a CPU time.
    #[error("{side} (pid {pid}): CPU time went backwards, {first} s at the first result, {end} s at the end")]
    CpuBackwards {
        /// Which consumer.
        side: String,
        /// The process.
        pid: u32,
        /// CPU seconds at the first stored result.
        first: f64,
        /// CPU seconds at the end.
        end: f64,
    },
}

/// Reads one consumer process's figures over a fill: its CPU time at the first stored result, then its
/// CPU time and peak memory at the end.
pub struct UsageProbe<'a, S: ProcSource> {
    source: &'a S,
    side: String,
    pid: u32,
}

/// A consumer process's figures over a fill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillUsage {
    /// CPU seconds used by the first stored result (start, group join, warm-up).
    pub cpu_at_first: f64,
    /// CPU seconds used by the end of the fill.
    pub cpu_at_end: f64,
    /// Peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Resident memory mapped from files at the end (the program's code, its libraries'), MiB.
    pub files_rss_mib: f64,
}

impl<'a, S: ProcSource> UsageProbe<'a, S> {
    /// A probe of the process `pid`, named `side` in its errors (`ours-256`, `peer-512`, ...).
    pub fn new(source: &'a S, side: &str, pid: u32) -> Self {
        Self {
            source,
            side: side.to_owned(),
            pid,
        }
    }

    /// The CPU seconds used so far, read at the first stored result.
    pub fn at_first_result(&self) -> Result<f64, UsageError> {
        self.cpu("at the first stored result")
    }

    /// The figures at the end of the fill, from `cpu_at_first` (what [`Self::at_first_result`] read).
    pub fn at_end(&self, cpu_at_first: f64) -> Result<FillUsage, UsageError> {
        let cpu_at_end = self.cpu("at the end")?;
        if cpu_at_end < cpu_at_first {
            return Err(UsageError::CpuBackwards {
                side: self.side.clone(),
                pid: self.pid,
                first: cpu_at_first,
                end: cpu_at_end,
            });
        }
        let memory = self
            .source
            .memory(self.pid)
            .map_err(|source| UsageError::Memory {
                side: self.side.clone(),
                pid: self.pid,
                source,
            })?;
        Ok(FillUsage {
            cpu_at_first,
            cpu_at_end,
            peak_rss_mib: memory.peak_kib as f64 / 1024.0,
            files_rss_mib: memory.files_kib as f64 / 1024.0,
        })
    }

    fn cpu(&self, at: &'static str) -> Result<f64, UsageError> {
        self.source
            .cpu_seconds(self.pid)
            .map_err(|source| UsageError::Cpu {
                side: self.side.clone(),
                pid: self.pid,
                at,
                source,
            })
    }
}

impl FillUsage {
    /// CPU seconds per 1,000 of `results`, over the process's whole life.
    pub fn cpu_s_per_1000(&self, results: u64) -> f64 {
        self.cpu_at_end * 1000.0 / results.max(1) as f64
    }

    /// CPU seconds per 1,000 of the `filled` results stored after the first reading (the steady fill).
    pub fn cpu_s_per_1000_fill(&self, filled: u64) -> f64 {
        (self.cpu_at_end - self.cpu_at_first) * 1000.0 / filled.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A /proc that answers `cpu` (in turn) and `peak_kib`, or fails where they are `None`.
    struct Fake {
        cpu: std::cell::RefCell<Vec<Option<f64>>>,
        peak_kib: Option<u64>,
    }

    impl Fake {
        fn new(cpu: &[Option<f64>], peak_kib: Option<u64>) -> Self {
            Self {
                cpu: std::cell::RefCell::new(cpu.iter().rev().copied().collect()),
                peak_kib,
            }
        }
    }

    fn gone() -> HarnessError {
        HarnessError::Process("/proc/4242/stat is gone".into())
    }

    impl ProcSource for Fake {
        fn cpu_seconds(&self, _pid: u32) -> Result<f64, HarnessError> {
            self.cpu.borrow_mut().pop().flatten().ok_or_else(gone)
        }

        fn memory(&self, _pid: u32) -> Result<Memory, HarnessError> {
            let peak_kib = self.peak_kib.ok_or_else(gone)?;
            Ok(Memory {
                peak_kib,
                current_kib: peak_kib,
                files_kib: peak_kib / 8,
            })
        }
    }

    /// The figures of one side as the fill benchmark reads them, for ours and the peer alike.
    fn read(source: &Fake, side: &str) -> Result<FillUsage, UsageError> {
        let probe = UsageProbe::new(source, side, 4242);
        let first = probe.at_first_result()?;
        probe.at_end(first)
    }

    #[test]
    fn a_failed_read_of_proc_fails_the_run_on_either_side() {
        for side in ["ours-256", "peer-256"] {
            let at_first = read(&Fake::new(&[None, Some(5.0)], Some(80_000)), side);
            assert!(
                matches!(
                    at_first,
                    Err(UsageError::Cpu {
                        at: "at the first stored result",
                        ..
                    })
                ),
                "{side}: {at_first:?}"
            );
            let at_end = read(&Fake::new(&[Some(1.0), None], Some(80_000)), side);
            assert!(
                matches!(
                    at_end,
                    Err(UsageError::Cpu {
                        at: "at the end",
                        ..
                    })
                ),
                "{side}: {at_end:?}"
            );
            let memory = read(&Fake::new(&[Some(1.0), Some(5.0)], None), side);
            assert!(
                matches!(memory, Err(UsageError::Memory { .. })),
                "{side}: {memory:?}"
            );
            let backwards = read(&Fake::new(&[Some(5.0), Some(1.0)], Some(80_000)), side);
            assert!(
                matches!(backwards, Err(UsageError::CpuBackwards { .. })),
                "{side}: {backwards:?}"
            );
        }
    }

    #[test]
    fn the_figures_per_1000_results() {
        let usage = read(
            &Fake::new(&[Some(1.0), Some(5.0)], Some(80_896)),
            "ours-256",
        )
        .expect("figures");
        assert_eq!(usage.cpu_s_per_1000(10_000), 0.5);
        assert_eq!(usage.cpu_s_per_1000_fill(8_000), 0.5);
        assert_eq!(usage.peak_rss_mib, 79.0);
        assert_eq!(usage.files_rss_mib, 79.0 / 8.0);
    }
}
