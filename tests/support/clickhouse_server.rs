//! A private ClickHouse server for fault tests: started with `scripts/clickhouse-server.sh` in
//! a temporary directory on free loopback ports, killed with SIGKILL, restarted on the same data.
//! Shared by the library's and the server's fault tests (`#[path]`-included).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct PrivateClickHouse {
    dir: tempfile::TempDir,
    pub http: u16,
    tcp: u16,
}

fn script() -> PathBuf {
    // Both the library's tests and the server's run from their crate's directory.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for p in [here.join("scripts"), here.join("../scripts")] {
        if p.join("clickhouse-server.sh").exists() {
            return p.join("clickhouse-server.sh");
        }
    }
    panic!("scripts/clickhouse-server.sh not found");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PrivateClickHouse {
    /// None (with a note) when `clickhouse-server` is not installed, unless
    /// `TRACESTORE_REQUIRE_CLICKHOUSE=1` makes that a failure.
    pub fn start() -> Option<PrivateClickHouse> {
        let installed = Command::new("sh")
            .args(["-c", "command -v clickhouse-server"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !installed {
            assert!(
                std::env::var("TRACESTORE_REQUIRE_CLICKHOUSE").as_deref() != Ok("1"),
                "TRACESTORE_REQUIRE_CLICKHOUSE=1 but clickhouse-server is not installed"
            );
            eprintln!("clickhouse-server is not installed: this fault test did not run");
            return None;
        }
        let s = PrivateClickHouse {
            dir: tempfile::tempdir().unwrap(),
            http: free_port(),
            tcp: free_port(),
        };
        s.run();
        Some(s)
    }

    fn run(&self) {
        let out = Command::new("bash")
            .arg(script())
            .arg(self.dir.path())
            .arg(self.http.to_string())
            .arg(self.tcp.to_string())
            .output()
            .expect("run clickhouse-server.sh");
        assert!(
            out.status.success(),
            "clickhouse-server did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// SIGKILL, and wait until the port is closed.
    pub fn kill(&self) {
        let pid = std::fs::read_to_string(self.dir.path().join("pid")).unwrap();
        let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.http)).is_err() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("clickhouse-server still answers after SIGKILL");
    }

    /// Starts again on the same data and ports.
    pub fn restart(&self) {
        self.run();
    }
}

impl Drop for PrivateClickHouse {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
    }
}
