//! The two brokers under test, each a separate process on 127.0.0.1 so that
//! its CPU time and resident memory can be read from /proc: jitpilot's
//! endpoint (`jitpilot serve`) and Debian's mosquitto configured for mutual
//! TLS with the same CA, server certificate and client identities.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Jitpilot,
    Mosquitto,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Jitpilot => "jitpilot",
            Kind::Mosquitto => "mosquitto",
        }
    }
}

/// Files both brokers are configured from.
pub struct Setup {
    /// The jitpilot data dir (deployed, initialised, identities ACTIVE).
    pub data_dir: PathBuf,
    /// The jitpilot binary.
    pub jitpilot: PathBuf,
    /// Vendor CA certificate (mosquitto's `cafile`).
    pub vendor_ca: PathBuf,
    /// Server certificate chain and key, signed by the endpoint CA
    /// (mosquitto's `certfile` / `keyfile`; jitpilot makes its own the same way).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Where mosquitto's config and log go.
    pub work: PathBuf,
}

/// A running broker.
pub struct Broker {
    pub kind: Kind,
    pub addr: String,
    child: Child,
}

/// CPU seconds (user + system, all threads) process `pid` has used so far;
/// NaN if /proc cannot tell.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    // Fields after the parenthesised command name; utime and stime are
    // fields 14 and 15 of the whole line, in clock ticks (100 per second
    // on Linux).
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// `n` processes spinning on the CPU (a shell's empty loop) while it is
/// alive: "the machine is busy", the same way for both brokers.
pub struct BusyLoad(Vec<Child>);

impl BusyLoad {
    pub fn start(n: usize) -> Result<BusyLoad, String> {
        let mut spinners = BusyLoad(Vec::new());
        for _ in 0..n {
            let child = Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start a busy loop: {e}"))?;
            spinners.0.push(child);
        }
        Ok(spinners)
    }
}

impl Drop for BusyLoad {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port (bound, then released for the broker to take).
fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Broker {
    /// Starts `kind` and waits (bounded) until it accepts TCP connections.
    pub fn start(kind: Kind, setup: &Setup) -> Result<Broker, String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let addr = format!("127.0.0.1:{port}");
        let child = match kind {
            Kind::Jitpilot => Command::new(&setup.jitpilot)
                .arg("--data-dir")
                .arg(&setup.data_dir)
                .arg("--mqtt-addr")
                .arg(&addr)
                .args(["--api-addr", "off"])
                // Broker against broker: mosquitto has no per-connection
                // publish quota, so AWS's (100 PUBLISH/s per connection,
                // enforced by default) is raised; with it on, 100 clients
                // measure the quota (≈ 20,000 msg/s). A JITPILOT_LIMITS
                // given to the bench wins.
                .env(
                    "JITPILOT_LIMITS",
                    std::env::var("JITPILOT_LIMITS").unwrap_or_else(|_| {
                        "publishes_per_second=1000000,bytes_per_second=1000000000".into()
                    }),
                )
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", setup.jitpilot.display()))?,
            Kind::Mosquitto => {
                let conf = setup.work.join("mosquitto.conf");
                std::fs::write(&conf, mosquitto_conf(port, setup))
                    .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
                Command::new(mosquitto_binary())
                    .arg("-c")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| {
                        format!("cannot start mosquitto ({e}); apt-get install -y mosquitto")
                    })?
            }
        };
        let mut broker = Broker { kind, addr, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&broker.addr).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                return Err(format!("{} exited at start: {status}", kind.name()));
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not listen within 30 s", kind.name()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    /// CPU seconds (user + system, all threads) the broker has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.child.id())
    }

    /// Resident memory in KiB: everything, code pages of the binary and
    /// its libraries included.
    pub fn rss_kib(&self) -> f64 {
        self.status_kib("VmRSS:")
    }

    /// Resident anonymous memory in KiB (heap, stacks, buffers): what
    /// grows with the clients; `rss_kib` minus the file-backed pages (code
    /// faulted in on first use, paid once and shared with the page cache).
    pub fn anon_kib(&self) -> f64 {
        self.status_kib("RssAnon:")
    }

    fn status_kib(&self, field: &str) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(f64::NAN)
    }

    /// Stops the broker: SIGTERM (jitpilot releases its data dir lock), then
    /// SIGKILL if it has not exited within 10 s.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto_binary() -> PathBuf {
    let sbin = Path::new("/usr/sbin/mosquitto");
    if sbin.exists() {
        sbin.to_path_buf()
    } else {
        PathBuf::from("mosquitto")
    }
}

/// Mutual TLS exactly as the endpoint does it: client certificate required,
/// chained to the Vendor CA; the same server certificate; TCP_NODELAY (the
/// endpoint sets it too); logging to a file like jitpilot's.
fn mosquitto_conf(port: u16, setup: &Setup) -> String {
    format!(
        "per_listener_settings false\n\
         allow_anonymous true\n\
         persistence false\n\
         log_dest file {log}\n\
         set_tcp_nodelay true\n\
         max_inflight_messages 100\n\
         listener {port} 127.0.0.1\n\
         cafile {ca}\n\
         certfile {cert}\n\
         keyfile {key}\n\
         require_certificate true\n",
        log = setup.work.join("mosquitto.log").display(),
        ca = setup.vendor_ca.display(),
        cert = setup.server_cert.display(),
        key = setup.server_key.display(),
    )
}
