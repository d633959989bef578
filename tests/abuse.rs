//! One misbehaving client — authenticated or not — against the local
//! cloud (issue 13): it can neither exhaust the endpoint's memory or disk
//! nor keep other devices out, and no command resets state silently.
//!
//! Each test is one attack, and asserts bounds and outcomes, never
//! timings: the machine is shared and busy. Timings are in BENCHMARKS.md.

mod support;
use support::Bounded;

use jitpilot::cloud::local::endpoint::limits::Limits;
use jitpilot::cloud::local::endpoint::{EndpointConfig, EndpointStats};
use jitpilot::cloud::local::runtime::{self, RunningCloud};
use jitpilot::cloud::local::LocalCloud;
use jitpilot::cloud::EventBus;
use jitpilot::fleet::SAMPLE_SERIAL;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use support::endpoint::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The local cloud of the fixture's data dir, in this process, with `limits`.
async fn start(cloud: &LocalCloud, limits: Limits) -> RunningCloud {
    runtime::start_with(
        cloud,
        EndpointConfig {
            addr: "127.0.0.1:0".into(),
            limits,
            ..EndpointConfig::default()
        },
    )
    .await
    .expect("the local cloud starts")
}

fn stats(running: &RunningCloud) -> EndpointStats {
    running.endpoint().stats()
}

/// A raw MQTT connection with the fixture's observer identity (policy
/// `iot:*`), CONNECT sent and CONNACK read.
async fn raw_connect(
    running: &RunningCloud,
    fx: &Fixture,
    client_id: &str,
) -> TlsStream<TcpStream> {
    let root = std::fs::read_to_string(running.endpoint_ca_path()).expect("endpoint CA");
    let connector = tokio_rustls::TlsConnector::from(client_config(&root, &fx.observer));
    let tcp = TcpStream::connect(running.local_addr()).await.expect("tcp");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("tls");
    tls.write_all(&connect_packet(client_id))
        .await
        .expect("CONNECT");
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, tls.read_exact(&mut connack))
        .await
        .expect("CONNACK in time")
        .expect("CONNACK");
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK accepted");
    tls
}

/// A QoS 0 PUBLISH packet.
fn publish(topic: &str, payload: &[u8], retain: bool) -> Vec<u8> {
    let mut p = rumqttc::mqttbytes::v4::Publish::new(
        topic,
        rumqttc::mqttbytes::QoS::AtMostOnce,
        payload.to_vec(),
    );
    p.retain = retain;
    let mut buf = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Publish(p)
        .write(&mut buf, usize::MAX)
        .expect("encode");
    buf.to_vec()
}

/// Writes `packets` (stopping quietly once the server has closed), then
/// reads until the server closes. True when it closed within the wait.
async fn flood_until_closed(tls: &mut TlsStream<TcpStream>, packets: Vec<Vec<u8>>) -> bool {
    for chunk in packets.chunks(64) {
        if tls.write_all(&chunk.concat()).await.is_err() {
            break;
        }
    }
    let _ = tls.flush().await;
    let mut sink = vec![0u8; 64 * 1024];
    tokio::time::timeout(WAIT, async {
        loop {
            match tls.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Rows of the event log, as `status` would read them.
fn event_rows(data_dir: &Path, kind: &str) -> usize {
    let store = jitpilot::store::Store::open_read_only(data_dir).expect("read-only store");
    store
        .list_events(0, usize::MAX)
        .expect("events")
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

/// Defect 1: one authenticated client flooding retained messages. The
/// store refuses once full (count, then bytes), disconnecting the
/// publisher; what it holds is bounded and survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_flood_is_bounded_refused_once_full_and_persisted() {
    let fx = fixture();
    let cloud = LocalCloud::open(&fx.data_dir, EventBus::default()).expect("open");
    let mut limits = Limits {
        retained_messages: 200,
        retained_bytes: 256 * 1024,
        // The rate limit is another test's: let this flood through it.
        publishes_per_second: 1_000_000,
        bytes_per_second: 1_000_000_000,
        ..Limits::default()
    };
    let running = start(&cloud, limits.clone()).await;

    // 1,000 retained messages of 1 KiB: the 201st is refused.
    let mut flooder = raw_connect(&running, &fx, "flooder-1").await;
    let packets = (0..1000)
        .map(|n| publish(&format!("flood/{n}"), &[b'x'; 1024], true))
        .collect();
    assert!(
        flood_until_closed(&mut flooder, packets).await,
        "the publisher is disconnected once the retained store is full"
    );
    let s = stats(&running);
    assert_eq!(s.retained_messages, 200, "{s:?}");
    assert!(s.retained_refused >= 1, "{s:?}");
    assert!(s.retained_bytes <= 256 * 1024, "{s:?}");

    // Cleared ones make room; big ones then run into the byte bound.
    let mut flooder = raw_connect(&running, &fx, "flooder-2").await;
    let mut packets: Vec<Vec<u8>> = (0..50)
        .map(|n| publish(&format!("flood/{n}"), b"", true))
        .collect();
    packets.extend((0..100).map(|n| publish(&format!("big/{n}"), &[b'y'; 16 * 1024], true)));
    assert!(flood_until_closed(&mut flooder, packets).await);
    let s = stats(&running);
    assert!(s.retained_bytes <= 256 * 1024, "{s:?}");
    assert!(
        s.retained_messages < 200,
        "the byte bound refused first: {s:?}"
    );
    assert!(s.retained_refused >= 2, "{s:?}");
    let held = s.retained_messages;

    // A restart keeps them (AWS does), within the bounds.
    running.shutdown().await;
    limits.retained_messages = 1_000;
    let running = start(&cloud, limits).await;
    assert_eq!(stats(&running).retained_messages, held);
    let mut subscriber = raw_connect(&running, &fx, "late-subscriber").await;
    let mut buf = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Subscribe(rumqttc::mqttbytes::v4::Subscribe::new(
        "flood/77",
        rumqttc::mqttbytes::QoS::AtMostOnce,
    ))
    .write(&mut buf, usize::MAX)
    .expect("encode");
    subscriber.write_all(&buf).await.expect("SUBSCRIBE");
    let mut received = bytes::BytesMut::new();
    let retained = tokio::time::timeout(WAIT, async {
        loop {
            let mut chunk = [0u8; 4096];
            let n = subscriber.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before the retained message");
            received.extend_from_slice(&chunk[..n]);
            while let Ok(packet) = rumqttc::mqttbytes::v4::Packet::read(&mut received, 1 << 20) {
                if let rumqttc::mqttbytes::v4::Packet::Publish(p) = packet {
                    return p;
                }
            }
        }
    })
    .await
    .expect("the retained message after a restart");
    assert!(retained.retain);
    assert_eq!(retained.payload.len(), 1024);
    running.shutdown().await;
}

/// Defect 4: one authenticated client publishing as fast as it can is
/// throttled, then disconnected; what it caused (routing, rule and
/// function runs, event rows) stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_flood_is_throttled_then_disconnected() {
    let fx = fixture();
    let cloud = LocalCloud::open(&fx.data_dir, EventBus::default()).expect("open");
    let running = start(&cloud, Limits::default()).await;
    let rows_before = cloud
        .store()
        .list_events(0, usize::MAX)
        .expect("rows")
        .len();
    let mut flooder = raw_connect(&running, &fx, "flooder").await;
    // Junk to a request topic the rotation function answers, and to a
    // topic a republish rule fires on: 20,000 publishes at once.
    let request = format!("/cert-rotation/create-man-cert/{SAMPLE_SERIAL}/rqst");
    let packets = (0..20_000)
        .map(|n| {
            if n % 2 == 0 {
                publish(&request, b"junk", false)
            } else {
                publish("test/in/x", b"{}", false)
            }
        })
        .collect();
    assert!(
        flood_until_closed(&mut flooder, packets).await,
        "a client far over 100 publishes/s is disconnected"
    );
    let s = stats(&running);
    assert_eq!(s.throttled_disconnects, 1, "{s:?}");
    // Bounded by the allowance, the grace and one read's worth — not 20,000.
    assert!(s.messages_routed < 5_000, "{s:?}");
    let rows_after = cloud
        .store()
        .list_events(0, usize::MAX)
        .expect("rows")
        .len();
    assert!(
        rows_after - rows_before < 5_000,
        "{} rows for one flood",
        rows_after - rows_before
    );
    running.shutdown().await;
}

/// Defect 4: junk connections from an unauthenticated peer are counted,
/// and only sampled into the event log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_connections_are_counted_not_one_row_each() {
    let fx = fixture();
    let cloud = LocalCloud::open(&fx.data_dir, EventBus::default()).expect("open");
    let running = start(&cloud, Limits::default()).await;
    const JUNK: u64 = 400;
    for _ in 0..JUNK {
        let mut tcp = TcpStream::connect(running.local_addr()).await.expect("tcp");
        let _ = tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut sink)).await;
    }
    eventually(|| (stats(&running).handshakes_failed >= JUNK).then_some(())).await;
    let s = stats(&running);
    assert!(s.events_skipped >= JUNK - 20, "{s:?}");
    drop(running);
    let rows = event_rows(&fx.data_dir, "endpoint.tls_refused");
    assert!(
        (1..=20).contains(&rows),
        "{rows} rows for {JUNK} junk connections"
    );
}

/// Defect 2: 1,000 idle sockets (no certificate needed), reopened as the
/// endpoint closes them, while a device onboards: it still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_onboards_while_a_thousand_idle_sockets_are_held_open() {
    use simulated_devices::{run_device, DeviceConfig, Goal};
    let fx = fixture();
    let cloud = LocalCloud::open(&fx.data_dir, EventBus::default()).expect("open");
    let idle = idle_sockets_allowed(1000);
    let defaults = Limits::default();
    // The defaults, unless this machine allows fewer sockets: then a share
    // per address that they still overflow.
    let limits = Limits {
        unauthenticated_per_ip: defaults.unauthenticated_per_ip.min(idle as usize / 2),
        ..defaults
    };
    let running = start(&cloud, limits).await;
    let addr = running.local_addr();

    // The attacker: holds 1,000 sockets open, reopening each one closed.
    let stop = tokio_util::sync::CancellationToken::new();
    let opened = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut holders = Vec::new();
    for _ in 0..idle {
        let (stop, opened) = (stop.clone(), opened.clone());
        holders.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let Ok(mut tcp) = TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut byte = [0u8; 1];
                tokio::select! {
                    _ = tcp.read(&mut byte) => {}
                    _ = stop.cancelled() => return,
                }
                // Closed by the endpoint: come back a second later.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
    }
    eventually(|| (opened.load(std::sync::atomic::Ordering::Relaxed) >= idle).then_some(())).await;

    let creds = fx.data_dir.join("devices").join(SAMPLE_SERIAL);
    let mut config = DeviceConfig::new(SAMPLE_SERIAL, &creds, addr.to_string());
    config.server_name = Some("localhost".into());
    config.seed = Some(13);
    let outcome = tokio::time::timeout(
        Duration::from_secs(180),
        run_device(config, Goal::Onboard, None),
    )
    .await
    .expect("onboarding finishes")
    .expect("the device onboards despite the idle sockets");
    assert!(outcome.manufacturer_cert_id.is_some());
    let s = stats(&running);
    assert!(
        s.handshakes_evicted > 0,
        "the idle sockets were over the bound: {s:?}"
    );
    stop.cancel();
    for h in holders {
        let _ = h.await;
    }
    running.shutdown().await;
}

/// `wanted` idle sockets, or fewer when this process may not open two
/// descriptors per socket (both ends live here) plus some: a CI runner's
/// default soft limit is often 1,024.
fn idle_sockets_allowed(wanted: u64) -> u64 {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        })
        .unwrap_or(u64::MAX);
    let allowed = wanted.min(soft.saturating_sub(300) / 2);
    if allowed < wanted {
        eprintln!("open-files limit {soft}: holding {allowed} idle sockets, not {wanted}");
    }
    allowed
}

/// Defect 5 and the protocol details, against `jitpilot serve`: a
/// network-supplied newline or NUL never reaches the log file as such;
/// SUBSCRIBE with reserved flags and an MQTT 3.1 CONNECT are answered as
/// MQTT 3.1.1 says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_log_lines_reserved_flags_and_mqtt_3_1() {
    let fx = fixture();
    let server = serve(&fx.data_dir);

    // A filter carrying a forged log line: refused, and logged with its reason.
    let forged =
        "x/#/y\n2026-12-02T10:00:00.000000Z  INFO jitpilot: FORGED certificate ACTIVE\u{7}";
    let mut bytes = connect_packet("injector");
    let mut subscribe = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Subscribe(rumqttc::mqttbytes::v4::Subscribe::new(
        forged,
        rumqttc::mqttbytes::QoS::AtMostOnce,
    ))
    .write(&mut subscribe, usize::MAX)
    .expect("encode");
    bytes.extend_from_slice(&subscribe);
    let received = raw_session(&server, &fx, &bytes).await;
    assert_eq!(received, [0x20, 2, 0, 0], "CONNACK, no SUBACK, closed");
    let log_path = fx.data_dir.join("logs").join("jitpilot.log");
    let log = eventually(|| {
        let log = std::fs::read(&log_path).ok()?;
        let text = String::from_utf8_lossy(&log).into_owned();
        text.contains("FORGED").then_some(log)
    })
    .await;
    let text = String::from_utf8_lossy(&log);
    assert!(
        !text.lines().any(|l| l.starts_with("2026-12-02T10:00:00")),
        "a forged line in the log:\n{text}"
    );
    assert!(
        !log.contains(&0) && !log.contains(&7),
        "a control byte in the log"
    );
    assert!(text.contains("\\n2026-12-02T10:00:00"), "{text}");

    // SUBSCRIBE with flags 0000 instead of 0010 (§3.8.1): closed, no SUBACK.
    let mut bytes = connect_packet("flags");
    let mut subscribe = bytes::BytesMut::new();
    rumqttc::mqttbytes::v4::Packet::Subscribe(rumqttc::mqttbytes::v4::Subscribe::new(
        "a/b",
        rumqttc::mqttbytes::QoS::AtMostOnce,
    ))
    .write(&mut subscribe, usize::MAX)
    .expect("encode");
    subscribe[0] = 0x80;
    bytes.extend_from_slice(&subscribe);
    let received = raw_session(&server, &fx, &bytes).await;
    assert_eq!(
        received,
        [0x20, 2, 0, 0],
        "CONNACK, then closed without SUBACK"
    );

    // MQTT 3.1 ("MQIsdp", level 3): CONNACK 0x01, then closed.
    let mut mqisdp = vec![0x10, 0, 0, 6];
    mqisdp.extend_from_slice(b"MQIsdp");
    mqisdp.extend_from_slice(&[3, 0x02, 0, 60, 0, 4]);
    mqisdp.extend_from_slice(b"old1");
    mqisdp[1] = (mqisdp.len() - 2) as u8;
    let received = raw_session(&server, &fx, &mqisdp).await;
    assert_eq!(
        received,
        [0x20, 2, 0, 1],
        "CONNACK 0x01 (unacceptable protocol version)"
    );
}

/// Runs the jitpilot binary.
fn jitpilot(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jitpilot"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .bounded_output()
        .expect("run jitpilot")
}

/// Defect 3: a 0-byte or missing database in a data dir with state is
/// refused by every command, with what to do; nothing is re-created, and
/// the devices' credentials are left alone. `status` never writes.
#[test]
fn an_empty_or_missing_database_is_refused_never_recreated() {
    let fx = fixture();
    let db = fx.data_dir.join("jitpilot.db");
    let vendor_cert = fx
        .data_dir
        .join("devices")
        .join(SAMPLE_SERIAL)
        .join("vendor.cert.pem");
    let factory = std::fs::read(&vendor_cert).expect("factory cert");
    for what in ["empty", "missing"] {
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(fx.data_dir.join(format!("jitpilot.db{suffix}")));
        }
        if what == "empty" {
            std::fs::write(&db, b"").expect("truncate");
        } else {
            std::fs::remove_file(&db).expect("delete");
        }
        for args in [
            &["status"][..],
            &["status", "--json"],
            &["init"],
            &["deploy"],
            &["serve", "--mqtt-addr", "127.0.0.1:0", "--api-addr", "off"],
            &["device", SAMPLE_SERIAL, "jitp"],
        ] {
            let out = jitpilot(&fx.data_dir, args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{args:?} on a {what} database succeeded"
            );
            assert!(
                stderr.contains(what) && stderr.contains("jitpilot init"),
                "{args:?} ({what}): {stderr}"
            );
            match what {
                "empty" => assert_eq!(std::fs::metadata(&db).expect("db").len(), 0),
                _ => assert!(!db.exists(), "{args:?} re-created the database"),
            }
        }
        assert_eq!(std::fs::read(&vendor_cert).expect("cert"), factory);
    }

    // `status` on a data dir that does not exist creates nothing.
    let nowhere = fx.data_dir.with_file_name("nowhere");
    let out = jitpilot(&nowhere, &["status"]);
    assert!(!out.status.success());
    assert!(!nowhere.exists(), "status created {}", nowhere.display());
}
