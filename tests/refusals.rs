//! Issue 12 against `jitpilot serve`: every refusal of the rotation function
//! reaches the device and the logs; `CsrKeyReuse` set by
//! `jitpilot deploy --parameter-overrides`; a device shaped like the AWS
//! sample's `mqtt_client.py` (Paho 1.x callbacks, CSR from the vendor key)
//! against both settings; jitpilot's device agent stopping on a permanent
//! refusal; X.509 v1 device certificates (serial 0, as pyOpenSSL makes them)
//! accepted after registration.

mod support;
use support::Bounded;

use jitpilot::cloud::local::LocalCloud;
use jitpilot::cloud::EventBus;
use jitpilot::fleet::SAMPLE_SERIAL;
use jitpilot::rotation::wire::{DeviceRow, ATTR_MANUFACTURER_CA_CERT_ID};
use jitpilot::vocabulary::DEVICE_TABLE;
use jitpilot::vocabulary::{VENDOR_CA_LABEL, VENDOR_KEY_PARAMETER};
use rumqttc::{AsyncClient, Event, Packet};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use support::endpoint::*;
use support::process::ChildServer;

/// `jitpilot serve` with its stderr in a file, to see what it reports there.
fn serve_with_stderr(data_dir: &Path, stderr: &Path) -> Server {
    let mut cmd = serve_command(data_dir);
    cmd.stderr(std::fs::File::create(stderr).expect("stderr file"));
    Server::listening(ChildServer::start_keeping_stderr(
        &mut cmd,
        "jitpilot serve",
    ))
}

/// Opens the data dir's cloud, waiting for an earlier owner in this process
/// (the fixture's cloud) to let go of its lock.
fn open_cloud(data_dir: &Path) -> LocalCloud {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match LocalCloud::open(data_dir, EventBus::default()) {
            Ok(cloud) => return cloud,
            Err(e) if std::time::Instant::now() > deadline => panic!("open: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn jitpilot(data_dir: &Path, args: &[&str]) -> std::process::Output {
    support::jitpilot_on(data_dir, args)
}

/// Runs `tests/py/sample_device.py` for the sample's serial; its JSON line.
async fn sample_device(server: &Server, data_dir: &Path, steps: &[&str]) -> serde_json::Value {
    let creds = data_dir.join("devices").join(SAMPLE_SERIAL);
    support::json_line_of(
        support::python_script("sample_device.py")
            .args(["--addr", &server.addr, "--serial", SAMPLE_SERIAL])
            .args(["--attempts", "3", "--wait", "5"])
            .arg("--creds")
            .arg(&creds)
            .args(steps),
        Duration::from_secs(240),
        "sample-like device",
        "python3 -m pip install paho-mqtt cryptography",
    )
    .await
}

fn log_text(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("logs").join("jitpilot.log")).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_device_reusing_its_vendor_key_is_answered_with_the_refusal() {
    let fx = fixture();
    let stderr = fx.data_dir.join("serve.stderr");
    let server = serve_with_stderr(&fx.data_dir, &stderr);
    let out = sample_device(&server, &fx.data_dir, &["--jitp", "--create_cert"]).await;
    assert_eq!(out["jitp"]["ok"], true, "{out}");
    let create = &out["create_cert"];
    assert_eq!(create["ok"], false, "refused: {out}");
    // The first request is answered with the refusal (at the latest the retry).
    let first = &create["answers"][0];
    assert!(first["attempt"].as_u64().expect("attempt") <= 2, "{out}");
    let error = &first["payload"]["error"];
    assert_eq!(error["code"], "csr_reuses_vendor_key", "{out}");
    assert_eq!(error["retryable"], false);
    let message = error["message"].as_str().expect("message");
    assert!(message.contains("new key pair"), "{message}");
    drop(server);
    // WARN in jitpilot.log and on serve's stderr, with the code.
    let log = log_text(&fx.data_dir);
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("csr_reuses_vendor_key")),
        "{log}"
    );
    let stderr = std::fs::read_to_string(&stderr).expect("stderr");
    assert!(stderr.contains("csr_reuses_vendor_key"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_csr_key_reuse_warn_the_sample_device_completes_marked_insecure() {
    let fx = fixture();
    // The aws CLI's flag syntax; an unknown value is refused with the choices.
    let bad = jitpilot(
        &fx.data_dir,
        &["deploy", "--parameter-overrides", "CsrKeyReuse=sometimes"],
    );
    assert!(!bad.status.success());
    let why = String::from_utf8_lossy(&bad.stderr);
    assert!(why.contains("refuse") && why.contains("warn"), "{why}");
    let deployed = jitpilot(
        &fx.data_dir,
        &["deploy", "--parameter-overrides", "CsrKeyReuse=warn"],
    );
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    // A plain deploy keeps it, as `aws cloudformation deploy` does.
    assert!(jitpilot(&fx.data_dir, &["deploy"]).status.success());

    let stderr = fx.data_dir.join("serve.stderr");
    let server = serve_with_stderr(&fx.data_dir, &stderr);
    let out = sample_device(
        &server,
        &fx.data_dir,
        &["--jitp", "--create_cert", "--ack_cert"],
    )
    .await;
    assert_eq!(out["create_cert"]["ok"], true, "{out}");
    assert_eq!(out["ack_cert"]["ok"], true, "{out}");
    let cert_id = out["create_cert"]["cert_id"].as_str().expect("cert_id");
    drop(server);

    let stderr = std::fs::read_to_string(&stderr).expect("stderr");
    assert!(stderr.contains("INSECURE"), "{stderr}");
    assert!(log_text(&fx.data_dir).contains("INSECURE"));
    let cloud = open_cloud(&fx.data_dir);
    let store = cloud.store();
    let created = store
        .list_events_for(SAMPLE_SERIAL, 200)
        .expect("events")
        .into_iter()
        .find(|e| e.kind == "rotation.man_cert_created")
        .expect("man cert created");
    assert_eq!(created.detail["insecure"]["code"], "csr_reuses_vendor_key");
    assert_eq!(created.detail["manufacturer_cert_id"], cert_id);
    let row = DeviceRow::from_item(
        store
            .get_item(DEVICE_TABLE, SAMPLE_SERIAL)
            .expect("read")
            .expect("row"),
    );
    assert_eq!(row.raw_state(), Some("CR_CERT_ROTATION_COMPLETED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_agent_stops_at_a_permanent_refusal_and_reports_it() {
    let fx = fixture();
    // A row without its Manufacturer CA: every CSR is refused permanently.
    {
        let cloud = open_cloud(&fx.data_dir);
        let store = cloud.store();
        let row = DeviceRow::from_item(
            store
                .get_item(DEVICE_TABLE, SAMPLE_SERIAL)
                .expect("read")
                .expect("row"),
        )
        .with_attr(ATTR_MANUFACTURER_CA_CERT_ID, None);
        store.put_item(DEVICE_TABLE, row.item()).expect("write");
    }
    let server = serve(&fx.data_dir);
    let output = tokio::task::spawn_blocking({
        let data_dir = fx.data_dir.clone();
        move || jitpilot(&data_dir, &["device", SAMPLE_SERIAL, "create-cert"])
    })
    .await
    .expect("device run");
    drop(server);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}");
    assert!(stderr.contains("no_manufacturer_ca"), "{stderr}");
    assert!(stderr.contains("jitpilot init"), "what to do: {stderr}");
    // One request: the refusal is not retried.
    assert_eq!(stdout.matches("published the CSR").count(), 1, "{stdout}");
}

// ---- X.509 v1 ---------------------------------------------------------------

/// openssl signs `csr` with the CA as `openssl x509 -req` does without an
/// extensions file: X.509 v1, serial number 0.
fn openssl_v1(dir: &Path, cn: &str, ca_pem: &Path, ca_key: &Path) -> (String, String) {
    let key = dir.join(format!("{cn}.key"));
    let csr = dir.join(format!("{cn}.csr"));
    let cert = dir.join(format!("{cn}.pem"));
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl")
            .args(args)
            .bounded_output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = std::ffi::OsStr::new;
    // Country: the JITP template names the thing's attributes from it.
    let subject = format!("/C=US/CN={cn}");
    run(&[
        s("ecparam"),
        s("-name"),
        s("prime256v1"),
        s("-genkey"),
        s("-noout"),
        s("-out"),
        key.as_os_str(),
    ]);
    run(&[
        s("req"),
        s("-new"),
        s("-key"),
        key.as_os_str(),
        s("-subj"),
        s(&subject),
        s("-out"),
        csr.as_os_str(),
    ]);
    run(&[
        s("x509"),
        s("-req"),
        s("-in"),
        csr.as_os_str(),
        s("-CA"),
        ca_pem.as_os_str(),
        s("-CAkey"),
        ca_key.as_os_str(),
        s("-set_serial"),
        s("0"),
        s("-days"),
        s("30"),
        s("-out"),
        cert.as_os_str(),
    ]);
    let pem = std::fs::read_to_string(&cert).expect("cert");
    let info = jitpilot::pki::parse_cert(&pem).expect("x509-parser reads v1");
    assert_eq!(info.serial_hex, "00");
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .bounded_output()
        .expect("openssl");
    assert!(String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"));
    (pem, std::fs::read_to_string(&key).expect("key"))
}

/// A TLS client presenting `chain_pem`. rustls's own key check parses the
/// certificate with webpki (which refuses v1), so the key is set directly.
fn v1_client(
    root_ca: &str,
    chain_pem: &str,
    key_pem: &str,
    tls12: bool,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_ca.as_bytes()) {
        roots.add(cert.expect("root")).expect("add");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let signing = provider
        .key_provider
        .load_private_key(key)
        .expect("signing key");
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    Arc::new(config)
}

/// Connects (retrying past JITP's first refusal); `Err` with the last reason.
async fn connect_v1(
    server: &Server,
    tls: Arc<rustls::ClientConfig>,
    cn: &str,
) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..5 {
        let (_client, mut eventloop): (AsyncClient, _) =
            AsyncClient::new(options_for(&server.addr, tls.clone(), cn), 16);
        let outcome = tokio::time::timeout(WAIT, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => continue,
                    Err(e) => return Err(e.to_string()),
                }
            }
        })
        .await
        .expect("connect outcome within the timeout");
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_certificates_with_the_same_serial_connect_after_registration() {
    let fx = fixture();
    let work = tempfile::tempdir().expect("tempdir");
    let (ca_pem, ca_key) = {
        let cloud = open_cloud(&fx.data_dir);
        let store = cloud.store();
        let vendor = store
            .list_cas()
            .expect("cas")
            .into_iter()
            .find(|c| c.label == VENDOR_CA_LABEL)
            .expect("vendor CA");
        let key = store
            .get_parameter(VENDOR_KEY_PARAMETER, true)
            .expect("param")
            .expect("vendor key")
            .value;
        // Whitelisted, so the rotation function keeps the JITP certs ACTIVE.
        let man_ca = DeviceRow::from_item(
            store
                .get_item(DEVICE_TABLE, SAMPLE_SERIAL)
                .expect("read")
                .expect("row"),
        )
        .manufacturer_ca_cert_id()
        .expect("manufacturer CA")
        .to_string();
        for cn in ["V1DEVICE01", "V1DEVICE02"] {
            store
                .put_item(DEVICE_TABLE, DeviceRow::whitelisted(cn, &man_ca).item())
                .expect("whitelist");
        }
        let (ca_path, key_path) = (work.path().join("ca.pem"), work.path().join("ca.key"));
        std::fs::write(&ca_path, &vendor.pem).expect("write");
        std::fs::write(&key_path, key).expect("write");
        (ca_path, key_path)
    };
    let server = serve(&fx.data_dir);
    let root_ca = std::fs::read_to_string(&server.root_ca).expect("root ca");
    let ca_text = std::fs::read_to_string(&ca_pem).expect("ca");
    let mut ids = Vec::new();
    for (cn, tls12) in [("V1DEVICE01", false), ("V1DEVICE02", true)] {
        let (cert, key) = openssl_v1(work.path(), cn, &ca_pem, &ca_key);
        let chain = format!("{cert}{ca_text}");
        connect_v1(&server, v1_client(&root_ca, &chain, &key, tls12), cn)
            .await
            .unwrap_or_else(|e| panic!("{cn} (v1, serial 0) was refused: {e}"));
        ids.push(jitpilot::pki::certificate_id_from_pem(&cert).expect("id"));
        if cn == "V1DEVICE01" {
            // The same v1 cert with its signature damaged is refused.
            let mut der = CertificateDer::from_pem_slice(cert.as_bytes())
                .expect("der")
                .to_vec();
            let last = der.len() - 1;
            der[last] ^= 0x01;
            let forged = pem_of(&der);
            let refused = connect_v1(&server, v1_client(&root_ca, &forged, &key, false), cn).await;
            assert!(refused.is_err(), "a v1 cert with a bad signature connected");
        }
    }
    drop(server);
    // Two certificates with serial number 0 side by side, told apart by id.
    let cloud = open_cloud(&fx.data_dir);
    let status = cloud.status_sync().expect("status");
    for id in &ids {
        let cert = status
            .certificates
            .iter()
            .find(|c| &c.id == id)
            .unwrap_or_else(|| panic!("{id} registered"));
        assert_eq!(cert.status, "ACTIVE", "{cert:?}");
    }
    assert_ne!(ids[0], ids[1]);
}

fn pem_of(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}
