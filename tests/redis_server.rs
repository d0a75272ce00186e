//! A real `redis-server` (and `redis-sentinel`) on loopback, started and stopped by a test.
//! Debian's packages: `scripts/install-deps` installs them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_port, require_tool};

/// One Redis process on a fixed loopback port, so it can be stopped and started again at the
/// same address (a restart the bridges must ride out).
#[derive(Debug)]
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    /// Start a throwaway Redis (no persistence) in `dir`.
    pub fn start(dir: &Path) -> RedisServer {
        Self::start_with(dir, &[])
    }

    /// Start with extra command-line settings, e.g. `["--replicaof", "127.0.0.1 6379"]`.
    pub fn start_with(dir: &Path, extra: &[&str]) -> RedisServer {
        require_tool(
            "redis-server",
            "install Debian's redis-server (scripts/install-deps does)",
        );
        let dir = dir.join(format!("redis-{}", free_port()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut server = RedisServer {
            port: free_port(),
            dir,
            child: None,
            extra: extra.iter().map(|s| (*s).to_string()).collect(),
        };
        server.resume();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kill the process (SIGKILL: whatever it held in memory is gone).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start it again on the same port, empty.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.join("redis.log")).expect("redis log");
        let port = self.port.to_string();
        let mut args = vec![
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
        ];
        let dir = self.dir.display().to_string();
        args.push(&dir);
        let child = Command::new("redis-server")
            .args(&args)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_for_ping(self.port);
    }

    /// A plain client, for a test to look at what the bridges stored.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("redis connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Wait until a Redis (or Sentinel) on `port` answers PING.
pub fn wait_for_ping(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pong = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(300)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if pong.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "redis on port {port} did not answer PING"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A real `redis-sentinel` watching one master as `mymaster`, with a quorum of one and a
/// one-second down-after, so a test's failover takes seconds.
#[derive(Debug)]
pub struct RedisSentinel {
    pub port: u16,
    child: Child,
}

impl RedisSentinel {
    pub const MASTER: &'static str = "mymaster";

    pub fn start(dir: &Path, master_port: u16) -> RedisSentinel {
        require_tool(
            "redis-sentinel",
            "install Debian's redis-sentinel (scripts/install-deps does)",
        );
        let port = free_port();
        let dir = dir.join(format!("sentinel-{port}"));
        std::fs::create_dir_all(&dir).expect("sentinel dir");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\n\
                 sentinel monitor {m} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {m} 1000\n\
                 sentinel failover-timeout {m} 5000\n\
                 sentinel parallel-syncs {m} 1\n",
                dir.display(),
                m = Self::MASTER
            ),
        )
        .expect("sentinel.conf");
        let log = std::fs::File::create(dir.join("sentinel.log")).expect("sentinel log");
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start redis-sentinel");
        wait_for_ping(port);
        RedisSentinel { port, child }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .expect("sentinel connection")
    }

    /// The port of the master the Sentinel names now.
    pub fn master_port(&self) -> u16 {
        let (_, port): (String, String) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(Self::MASTER)
            .query(&mut self.connection())
            .expect("get-master-addr-by-name");
        port.parse().expect("port")
    }

    /// How many replicas of the master the Sentinel knows.
    pub fn replicas(&self) -> usize {
        let r: Vec<redis::Value> = redis::cmd("SENTINEL")
            .arg("replicas")
            .arg(Self::MASTER)
            .query(&mut self.connection())
            .expect("sentinel replicas");
        r.len()
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `replica` reports its link to the master up.
pub fn wait_for_replication(replica: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query(&mut replica.client())
            .unwrap_or_default();
        if info.contains("master_link_status:up") {
            return;
        }
        assert!(Instant::now() < deadline, "replica never synced: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
