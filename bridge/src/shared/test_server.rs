//! A throwaway `redis-server` on loopback for the stores' unit tests (Debian's package;
//! `scripts/install-deps` installs it). Killed when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{RedisConfig, RedisTarget, Secret};

pub struct TestRedis {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl TestRedis {
    pub fn start() -> TestRedis {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required for this test (scripts/install-deps installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        TestRedis {
            port,
            child,
            _dir: dir,
        }
    }

    /// The settings a bridge would load for this server, with `prefix`.
    pub fn config(&self, prefix: &str) -> RedisConfig {
        RedisConfig {
            target: RedisTarget::Url(format!("redis://127.0.0.1:{}/0", self.port)),
            username: None,
            password: Secret::default(),
            prefix: prefix.to_string(),
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
