//! What a drill reports, and the table and document made of the reports.

use std::fmt::Write as _;
use std::time::Duration;

use pricefront_harness::Machine;

/// The outcome of one drill.
#[derive(Debug, Clone, Default)]
pub struct DrillReport {
    /// A short name (`kill -9 consumer`).
    pub name: String,
    /// The fault injected and the load it was injected under.
    pub fault: String,
    /// Requests sent (published to Kafka, or sent to the edge).
    pub requests: u64,
    /// Requests without the result they should have had at the end; `None` where it has no meaning.
    pub lost: Option<u64>,
    /// Work done more than once (each drill says what it counts in its notes); `None` where it has no
    /// meaning.
    pub duplicated: Option<u64>,
    /// Invariants the drill found broken; empty when it passed.
    pub failures: Vec<String>,
    /// Why the drill was not run, when it was not.
    pub not_run: Option<String>,
    /// Figures and observations.
    pub notes: Vec<String>,
    /// How long the drill took.
    pub elapsed: Duration,
}

/// The verdict of a drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It ran and every invariant held.
    Passed,
    /// It ran and some invariant broke.
    Failed,
    /// It could not be run here.
    NotRun,
}

impl Verdict {
    /// How the table shows it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Passed => "pass",
            Verdict::Failed => "FAIL",
            Verdict::NotRun => "not run",
        }
    }
}

impl DrillReport {
    /// A report of a drill that was not run, and why.
    pub fn not_run(name: &str, fault: &str, reason: String) -> Self {
        Self {
            name: name.into(),
            fault: fault.into(),
            not_run: Some(reason),
            ..Self::default()
        }
    }

    /// The verdict: not run, failed (any failure), or passed.
    pub fn verdict(&self) -> Verdict {
        if self.not_run.is_some() {
            Verdict::NotRun
        } else if self.failures.is_empty() {
            Verdict::Passed
        } else {
            Verdict::Failed
        }
    }

    /// Records a broken invariant.
    pub fn fail(&mut self, failure: impl Into<String>) {
        self.failures.push(failure.into());
    }

    /// Records a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Fails the drill with `failure` unless `condition` holds.
    pub fn check(&mut self, condition: bool, failure: impl Into<String>) {
        if !condition {
            self.fail(failure);
        }
    }

    /// Every failure and note, one per line, for assertion messages.
    pub fn details(&self) -> String {
        let mut text = format!("{} ({}):", self.name, self.verdict().label());
        for failure in &self.failures {
            let _ = write!(text, "\n  FAILED: {failure}");
        }
        if let Some(reason) = &self.not_run {
            let _ = write!(text, "\n  not run: {reason}");
        }
        for note in &self.notes {
            let _ = write!(text, "\n  - {note}");
        }
        text
    }
}

fn figure(value: Option<u64>) -> String {
    value.map_or_else(|| "n/a".into(), |v| v.to_string())
}

/// The Markdown table of `reports`: one row per drill.
pub fn table(reports: &[DrillReport]) -> String {
    let mut text = String::from(
        "| drill | fault, under load | requests | lost | duplicated | result | time |\n| --- | --- | ---: | ---: | ---: | --- | ---: |\n",
    );
    for r in reports {
        let time = if r.verdict() == Verdict::NotRun {
            "-".to_owned()
        } else {
            format!("{:.0} s", r.elapsed.as_secs_f64())
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.fault,
            r.requests,
            figure(r.lost),
            figure(r.duplicated),
            r.verdict().label(),
            time
        );
    }
    text
}

/// The notes, failures and reasons of every drill, as Markdown sections.
pub fn details(reports: &[DrillReport]) -> String {
    let mut text = String::new();
    for r in reports {
        let _ = writeln!(text, "### {}\n", r.name);
        if let Some(reason) = &r.not_run {
            let _ = writeln!(text, "- **Not run**: {reason}");
        }
        for failure in &r.failures {
            let _ = writeln!(text, "- **FAILED**: {failure}");
        }
        for note in &r.notes {
            let _ = writeln!(text, "- {note}");
        }
        text.push('\n');
    }
    text
}

/// RELIABILITY.md: what the drills do, the command, the consumer binary, the date, the machine, the table
/// and the details.
pub fn reliability_document(
    reports: &[DrillReport],
    command: &str,
    consumer: &str,
    date: &str,
    machine: &Machine,
) -> String {
    format!(
        "# Reliability drills\n\n\
         Generated by `{command}` on {date}, on {machine}. Do not edit by hand: run the command again.\n\n\
         Each drill runs the real local stack (Kafka 4.1, the Strimzi Kafka Bridge 1.1.0 and Redis from\n\
         `dev/stack.sh`, consumer processes,\n\
         simulated vendors, the edge Worker under `wrangler dev`), injects one fault under a bounded load\n\
         (on 127.0.0.1 only), and counts what follows. The consumers run `{consumer}`: the release\n\
         build, the binary a user deploys (a debug build at window 256 is CPU-bound on 2 cores).\n\n\
         - **lost**: published requests without a stored result in Redis at the end of the drill (Redis read\n\
           directly, every product checked), after waiting a bounded time for the system to recover by itself;\n\
           for the REST proxy drill, misses answered 202 without a record in Kafka; for the edge drill, a result\n\
           stored before the battery that is no longer served unchanged after it;\n\
         - **duplicated**: work done twice. For the drills with healthy vendors it is the extra fan-out rounds:\n\
           vendor calls counted by the simulator beyond one round per product, divided by the number of vendors\n\
           (a round cut short by the fault counts too); for the vendor-fault drill, whose retries make vendor\n\
           calls no measure, it is the products the vendors were asked about in more than one round (the\n\
           simulator counts, per product and vendor, the answers that end a round: anything but a 503).\n\n\
         The three **cluster** drills run on a three-node Kafka cluster beside the stack (`KAFKA_NODES=3\n\
         dev/stack.sh`: three KRaft nodes, each controller and broker, in three small JVMs of 512 MiB heap on the\n\
         same machine; topics of replication factor 3 with `min.insync.replicas=2`, the consumers' offsets too),\n\
         with a bridge of its own whose producer uses `acks=all` and idempotence, a Worker publishing through it\n\
         and two consumers. There, **lost** is a miss answered 202 without its record in the topic (Kafka did not\n\
         keep what it acknowledged) plus a record without a stored result, and **duplicated** a request written\n\
         to the topic twice.\n\n\
         The same drills run in the test suite, with assertions on lost = 0 (every drill must count it) and on\n\
         each drill's checks, among them no 5xx from the Worker's own code (the runtime's answers to requests\n\
         that break HTTP itself are listed apart in the edge drill's notes and not held to that rule):\n\
         `cargo test -p pricefront-drills -- --test-threads 1` with the stack up and a Worker at `$EDGE_KV_URL`\n\
         (`$EDGE_FILL_TOKEN`). Tests never assert times; the times below are what this run took.\n\n\
         {table}\n\
         ## Details\n\n\
         {details}",
        machine = machine.describe(),
        table = table(reports),
        details = details(reports),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_follows_failures_and_reasons() {
        let mut report = DrillReport {
            name: "x".into(),
            ..DrillReport::default()
        };
        assert_eq!(report.verdict(), Verdict::Passed);
        report.check(false, "broken");
        assert_eq!(report.verdict(), Verdict::Failed);
        let skipped = DrillReport::not_run("y", "f", "no proxy".into());
        assert_eq!(skipped.verdict(), Verdict::NotRun);
        let text = table(&[report, skipped]);
        assert!(text.contains("| x |"), "{text}");
        assert!(text.contains("| n/a | n/a | not run | - |"), "{text}");
    }
}
