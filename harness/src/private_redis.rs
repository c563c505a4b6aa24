//! A Redis of one test's own, on a free port, that the test may stop and start again to drill an outage,
//! without touching the shared Redis of the stack. It needs `redis-server` on the PATH.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::HarnessError;

/// How long a starting `redis-server` may take to answer `PING`.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A `redis-server` process started by a test (no persistence), killed when dropped.
pub struct PrivateRedis {
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts a `redis-server` on a free port of 127.0.0.1 and waits until it answers.
    pub async fn start() -> Result<Self, HarnessError> {
        let port = crate::free_port()?;
        let log = std::env::temp_dir().join(format!("pricefront-private-redis-{port}.log"));
        let mut redis = Self {
            port,
            log,
            child: None,
        };
        redis.spawn().await?;
        Ok(redis)
    }

    /// Its URL, `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills it (SIGKILL): an outage. Its data is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty), and waits until it answers.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        self.stop();
        self.spawn().await
    }

    async fn spawn(&mut self) -> Result<(), HarnessError> {
        let log = std::fs::File::create(&self.log)
            .map_err(HarnessError::io("creating the private Redis log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::from(
                log.try_clone()
                    .map_err(HarnessError::io("the private Redis log"))?,
            ))
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(HarnessError::io(
                "starting redis-server: is it on the PATH? (`apt-get install redis-server`)",
            ))?;
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + START_LIMIT;
        while !self.answers() {
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!(
                        "the private redis-server on port {} answering PING (its log: {})",
                        self.port,
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    ),
                    limit: START_LIMIT,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Whether it answers `PING` right now.
    pub fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
