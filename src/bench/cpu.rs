//! Where a phase's CPU time went, from Linux's `/proc`: every CPU's busy time, this process's
//! (the engine's) and the emulator process's; what is left is Postgres's and anything else the
//! machine runs. A phase that keeps every CPU busy is bound by them, not by Graph's latency or
//! a lock, and no concurrency makes it faster on this machine.

use serde::Serialize;

/// Clock ticks per second of `/proc`'s CPU counters (`USER_HZ`, 100 on Linux whatever the
/// kernel's own tick).
const TICKS: f64 = 100.0;

/// CPU-seconds spent during a phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuSpent {
    /// Every CPU's busy time together (user, system and interrupts; not idle, not waiting for
    /// I/O, not taken by the hypervisor), from `/proc/stat`.
    pub machine: f64,
    /// This process's: the engine, with the benchmark's own polling.
    pub engine: f64,
    /// The emulator process's.
    pub emulator: f64,
    /// `machine − engine − emulator`: Postgres and whatever else the machine ran.
    pub rest: f64,
    /// `machine` ÷ (the phase's wall time × CPUs): 1 is every CPU busy throughout.
    pub busy_share: f64,
}

/// The counters at one moment, in CPU-seconds.
#[derive(Debug, Clone, Copy)]
pub struct CpuClock {
    machine: f64,
    engine: f64,
    emulator: f64,
}

impl CpuClock {
    /// The counters now; `None` where `/proc` does not give them.
    pub fn read(emulator_pid: Option<u32>) -> Option<Self> {
        Some(Self {
            machine: machine_busy(&std::fs::read_to_string("/proc/stat").ok()?)?,
            engine: process_time(&std::fs::read_to_string("/proc/self/stat").ok()?)?,
            emulator: emulator_pid
                .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
                .and_then(|stat| process_time(&stat))
                .unwrap_or(0.0),
        })
    }

    /// What was spent from this reading to `later`, over `seconds` of wall time on `cpus` CPUs.
    pub fn spent(&self, later: &Self, seconds: f64, cpus: usize) -> CpuSpent {
        let machine = later.machine - self.machine;
        let engine = later.engine - self.engine;
        let emulator = later.emulator - self.emulator;
        CpuSpent {
            machine: super::round(machine, 2),
            engine: super::round(engine, 2),
            emulator: super::round(emulator, 2),
            rest: super::round((machine - engine - emulator).max(0.0), 2),
            busy_share: super::round(machine / (seconds * cpus.max(1) as f64), 3),
        }
    }
}

/// The busy CPU-seconds of `/proc/stat`'s first line: user, nice, system, irq and softirq
/// (guest time is counted in user already).
fn machine_busy(stat: &str) -> Option<f64> {
    let ticks: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    let busy: f64 = [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| ticks.get(i).copied())
        .sum::<Option<f64>>()?;
    Some(busy / TICKS)
}

/// A process's user and system CPU-seconds from its `/proc/<pid>/stat` (fields 14 and 15,
/// counted after the command's name, which is in parentheses and may hold spaces).
fn process_time(stat: &str) -> Option<f64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / TICKS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_busy_counts_work_not_idle_io_or_steal() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  1000 20 300 9000 500 7 13 400 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(machine_busy(stat), Some(13.4));
        assert_eq!(machine_busy("intr 1 2 3\n"), None);
    }

    #[test]
    fn process_time_reads_past_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 2577 0 0 0 250 75 0 0 20 0 \
                    9 0 123 456 789";
        assert_eq!(process_time(stat), Some(3.25));
        assert_eq!(process_time("4242 (short) S 1"), None);
    }

    #[test]
    fn what_a_phase_spent_is_split_and_shared_over_the_cpus() {
        let before = CpuClock {
            machine: 100.0,
            engine: 10.0,
            emulator: 5.0,
        };
        let after = CpuClock {
            machine: 114.0,
            engine: 11.5,
            emulator: 5.5,
        };
        let spent = before.spent(&after, 7.0, 2);
        assert_eq!(spent.machine, 14.0);
        assert_eq!(spent.engine, 1.5);
        assert_eq!(spent.emulator, 0.5);
        assert_eq!(spent.rest, 12.0);
        assert_eq!(spent.busy_share, 1.0);
    }
}
