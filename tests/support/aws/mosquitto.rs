//! A stand-in for AWS IoT's MQTT data plane, which moto does not have:
//! Debian's mosquitto broker on loopback.
//!
//! - the device listener: TLS with a server certificate from a test CA
//!   (SAN `localhost`), `require_certificate` with the Vendor CA and the
//!   Manufacturer CA as the only client CAs, so a device's mutual TLS is
//!   real; the certificate's subject becomes the username, and the ACL of
//!   [`rotation_acl`] plays the two IoT policies: only the serial's vendor
//!   certificate may make step 3b, only its manufacturer certificate 3c;
//! - the rules engine's listener: plain MQTT on loopback, for the test's
//!   stand-in of IoT's rules engine (inside AWS, not a device).
//!
//! Connections are logged to a file, so the test sees what the broker saw.

use super::super::broker::{free_port, is_root, mosquitto_binary, wait_listening};
use super::super::Bounded;
use jitpilot::cloud::local::endpoint_ca::EndpointCa;
use jitpilot::pki::{self, KeyAlgorithm, Subject};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// mosquitto, killed on drop.
pub struct Mosquitto {
    child: Child,
    /// The TLS listener devices connect to (`localhost:<port>`).
    pub device_port: u16,
    /// The plain listener of the rules engine.
    pub rules_port: u16,
    /// The test CA that signed the server certificate: what devices trust.
    pub root_ca_pem: String,
    log: PathBuf,
}

impl Mosquitto {
    /// Starts mosquitto in `dir`, trusting `client_cas_pem` for devices,
    /// with `acl` on the device listener.
    pub fn start(dir: &Path, client_cas_pem: &str, acl: &str) -> Mosquitto {
        std::fs::create_dir_all(dir).expect("broker dir");
        let subject = Subject {
            common_name: Some("jitpilot test broker CA".into()),
            ..Subject::default()
        };
        let ca = pki::create_ca(&subject, KeyAlgorithm::EcdsaP256, 30).expect("test CA");
        let server = EndpointCa {
            cert_pem: ca.cert_pem.clone(),
            key_pem: ca.key_pem,
        }
        .server_identity()
        .expect("server cert");
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write broker file");
            path
        };
        let cafile = write("device-cas.pem", client_cas_pem);
        let certfile = write("server.pem", &server.cert_pem);
        let keyfile = write("server.key", &server.key_pem);
        let acl = write("acl", acl);
        let log = dir.join("mosquitto.log");
        let (device_port, rules_port) = (free_port(), free_port());
        // As root, mosquitto would drop to the `mosquitto` user, which
        // cannot read the test's private temp dir.
        let user = if is_root() { "user root\n" } else { "" };
        let conf = format!(
            "{user}per_listener_settings true\n\
             log_dest file {log}\n\
             log_type all\n\
             connection_messages true\n\
             \n\
             listener {device_port} 127.0.0.1\n\
             cafile {cafile}\n\
             certfile {certfile}\n\
             keyfile {keyfile}\n\
             require_certificate true\n\
             use_subject_as_username true\n\
             allow_anonymous false\n\
             acl_file {acl}\n\
             \n\
             listener {rules_port} 127.0.0.1\n\
             allow_anonymous true\n",
            log = log.display(),
            cafile = cafile.display(),
            certfile = certfile.display(),
            keyfile = keyfile.display(),
            acl = acl.display(),
        );
        let conf_path = write("mosquitto.conf", &conf);
        let program = mosquitto_binary();
        let child = Command::new(program)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (apt-get install -y mosquitto; scripts/test installs it)");
        let mut broker = Mosquitto {
            child,
            device_port,
            rules_port,
            root_ca_pem: ca.cert_pem,
            log,
        };
        broker.wait_ready();
        broker
    }

    fn wait_ready(&mut self) {
        wait_listening(
            &mut self.child,
            &[self.device_port, self.rules_port],
            &self.log,
        );
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `--iot-endpoint` for devices.
    pub fn iot_endpoint(&self) -> String {
        format!("localhost:{}", self.device_port)
    }
}

/// A certificate's subject as mosquitto names the client
/// (`use_subject_as_username`): OpenSSL's RFC 2253 form, most specific
/// first, e.g. `CN=IUQWXALODJESC1,OU=Factory,O=CoffeeMakerVendor,...`.
pub fn username_of(cert_pem: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(cert_pem)
        .bounded_output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(out.status.success(), "openssl x509 -subject failed");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("subject=")
        .to_string()
}

/// The broker's version of the two IoT policies for `serial`: its vendor
/// certificate (`vendor_username`) may ask for a manufacturer certificate
/// (CrInProgressCertPolicy), the manufacturer certificate (CN = serial, as
/// the device's CSR asks) may acknowledge it (CrCertRotationCompleteCertPolicy).
pub fn rotation_acl(serial: &str, vendor_username: &str) -> String {
    format!(
        "user {vendor_username}\n\
         topic write /cert-rotation/create-man-cert/{serial}/rqst\n\
         topic read /cert-rotation/create-man-cert/{serial}/rspn\n\
         \n\
         user CN={serial}\n\
         topic write /cert-rotation/ack-man-cert/{serial}/rqst\n\
         topic read /cert-rotation/ack-man-cert/{serial}/rspn\n\n"
    )
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
