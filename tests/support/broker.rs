//! A real MQTT broker for tests: Debian's `mosquitto` with TLS on a free
//! loopback port, its server certificate (SAN `localhost`) signed by a
//! fresh test CA. It stands in for AWS IoT's data plane, which moto lacks.

use super::Bounded;
use jitpilot::cloud::local::endpoint_ca::EndpointCa;
use jitpilot::pki::{self, Issued, KeyAlgorithm, Subject};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A subject with only a CommonName.
pub fn subject(cn: &str) -> Subject {
    Subject {
        common_name: Some(cn.into()),
        ..Subject::default()
    }
}

/// A CA of the test, signing the broker's certificate and clients'.
pub fn test_ca(cn: &str) -> Issued {
    pki::create_ca(&subject(cn), KeyAlgorithm::EcdsaP256, 1).expect("a test CA")
}

/// A client certificate signed by `ca`.
pub fn client_cert(ca: &Issued, cn: &str) -> Issued {
    pki::issue_device_cert(
        &ca.cert_pem,
        &ca.key_pem,
        &subject(cn),
        KeyAlgorithm::EcdsaP256,
        1,
    )
    .expect("a client certificate")
}

/// Debian's mosquitto with TLS on a free loopback port, killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    /// The test CA: it signed the server certificate; clients trust it.
    pub ca: Issued,
}

impl Broker {
    /// A broker whose server certificate (SAN `localhost`) is signed by a
    /// fresh test CA; with `require_certificate`, clients must present a
    /// certificate that CA signed.
    pub fn start(require_certificate: bool) -> Broker {
        let binary = mosquitto_binary();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = test_ca("jitpilot test broker CA");
        let server = EndpointCa {
            cert_pem: ca.cert_pem.clone(),
            key_pem: ca.key_pem.clone(),
        }
        .server_identity()
        .expect("a server certificate for localhost");
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write a broker file");
            path.display().to_string()
        };
        let port = free_port();
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_certificate}\npersistence false\nlog_dest file {}\n{}",
            file("ca.pem", &ca.cert_pem),
            file("server.pem", &server.cert_pem),
            file("server.key", &server.key_pem),
            dir.path().join("mosquitto.log").display(),
            // As root, mosquitto would switch to its own user, which cannot
            // read this temporary directory.
            if is_root() { "user root\n" } else { "" },
        );
        let config_path = file("mosquitto.conf", &config);
        let child = Command::new(binary)
            .args(["-c", &config_path])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is required: apt-get install mosquitto (scripts/test installs it)");
        let mut broker = Broker {
            child,
            port,
            dir,
            ca,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        let log = self.dir.path().join("mosquitto.log");
        wait_listening(&mut self.child, &[self.port], &log);
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// `localhost:<port>`: what `--iot-endpoint` names.
    pub fn endpoint(&self) -> String {
        format!("localhost:{}", self.port)
    }

    /// Publishes one message with `mosquitto_pub` over TLS, at QoS 1.
    pub fn publish(&self, topic: &str, payload: &str) {
        let client = client_cert(&self.ca, "publisher");
        let cert = self.dir.path().join("publisher.pem");
        let key = self.dir.path().join("publisher.key");
        std::fs::write(&cert, &client.cert_pem).expect("write");
        std::fs::write(&key, &client.key_pem).expect("write");
        let out = Command::new("mosquitto_pub")
            .args(["-h", "localhost", "-p", &self.port.to_string(), "-q", "1"])
            .arg("--cafile")
            .arg(self.dir.path().join("ca.pem"))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["-t", topic, "-m", payload])
            .bounded_output()
            .expect("mosquitto_pub is required: apt-get install mosquitto-clients");
        assert!(
            out.status.success(),
            "mosquitto_pub to {topic} failed: {}\nbroker log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian installs mosquitto in /usr/sbin, which a user's PATH may lack.
pub fn mosquitto_binary() -> &'static str {
    ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("mosquitto")
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits (60 s at most) until a starting mosquitto listens on every port;
/// panics with its log (`log`) if it exits or does not.
pub fn wait_listening(child: &mut Child, ports: &[u16], log: &Path) {
    let log = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("mosquitto exited ({status}); its log:\n{}", log());
        }
        let up = |port: &u16| std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok();
        if ports.iter().all(up) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen within 60 s:\n{}",
            log()
        );
        // Polling a starting process: there is no event to wait on.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// As root, mosquitto would switch to its own user, which cannot read the
/// test's private temporary directory: the config then says `user root`.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .bounded_output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
