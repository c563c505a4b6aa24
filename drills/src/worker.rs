//! An edge Worker under `wrangler dev` started for the drills, when none is given
//! (`scripts/edge-dev.sh`, with the already built Worker), and stopped when dropped.

use std::process::{Command, Stdio};

use crate::edge_input::Target;
use crate::DrillError;

/// A Worker this process started; stopped on drop.
#[derive(Debug)]
pub struct LocalWorker {
    name: String,
    /// Where it listens and its fill token.
    pub target: Target,
}

impl LocalWorker {
    /// Starts a KV-backed Worker named `name` on 127.0.0.1:`port` with a fresh random fill token, and
    /// waits until it answers (the script waits up to 180 s).
    pub fn start(name: &str, port: u16) -> Result<Self, DrillError> {
        let token = random_token()?;
        let output = Command::new(pricefront_harness::repo_path("scripts/edge-dev.sh"))
            .args(["start", name, &port.to_string(), "--var"])
            .arg(format!("FILL_TOKEN:{token}"))
            .stdin(Stdio::null())
            .output()?;
        let worker = Self {
            name: name.to_owned(),
            target: Target {
                base: format!("http://127.0.0.1:{port}"),
                token,
            },
        };
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            return Err(DrillError::Worker(format!(
                "scripts/edge-dev.sh start {name} {port} failed ({}): {text}",
                output.status
            )));
        }
        Ok(worker)
    }

    /// Stops the Worker.
    pub fn stop(&self) -> Result<(), DrillError> {
        let status = Command::new(pricefront_harness::repo_path("scripts/edge-dev.sh"))
            .args(["stop", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(DrillError::Worker(format!(
                "scripts/edge-dev.sh stop {} failed ({status})",
                self.name
            )))
        }
    }
}

impl Drop for LocalWorker {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// 16 random bytes from the kernel, in hex.
fn random_token() -> Result<String, DrillError> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
