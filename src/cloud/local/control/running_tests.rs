//! The control plane with the endpoint running in the same process: a JITP
//! registered event cut short by a crash is redelivered on the next start,
//! a deploy made while the endpoint runs takes effect without a restart, and
//! a certificate switched off disconnects its device.

use super::*;
use crate::cloud::local::{jitp, runtime};
use crate::fleet::SAMPLE_SERIAL;
use crate::vocabulary::DEVICE_TABLE;
use crate::vocabulary::{ATTR_CR_STATE, ATTR_MANUFACTURER_CERT_ID};
use simulated_devices::machine::Identity;
use simulated_devices::{run_device, CredentialFolder, DeviceConfig, Goal};
use std::time::Duration;

fn cr_state(cloud: &LocalCloud, serial: &str) -> String {
    let row = cloud
        .store()
        .get_item(DEVICE_TABLE, serial)
        .unwrap()
        .expect("the serial is whitelisted");
    row[ATTR_CR_STATE].as_str().unwrap().to_string()
}

fn device(cloud: &LocalCloud, running: &runtime::RunningCloud, serial: &str) -> DeviceConfig {
    let mut config = DeviceConfig::new(
        serial,
        cloud.data_dir().device_dir(serial),
        running.local_addr().to_string(),
    );
    config.server_name = Some("localhost".into());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_event_cut_short_by_a_crash_is_redelivered_on_start() {
    let tmp = tempfile::tempdir().unwrap();
    let bus = EventBus::new(100_000);
    let cloud = LocalCloud::open(tmp.path(), bus.clone()).unwrap();
    cloud.deploy_sync().unwrap();
    cloud.init_sync(1).unwrap();
    let serial = SAMPLE_SERIAL;

    // The crash window: JITP registered the vendor cert and applied the
    // template (ACTIVE), then the process died before rule_jitp ran.
    let folder = CredentialFolder::new(cloud.data_dir().device_dir(serial));
    let chain = folder.read_required("vendor.cert.pem").unwrap();
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let cert_id = crate::pki::certificate_id(&der);
    let vendor_ca = cloud
        .store()
        .list_cas()
        .unwrap()
        .into_iter()
        .find(|c| c.label == crate::vocabulary::VENDOR_CA_LABEL)
        .unwrap();
    let request = jitp::JitpRequest {
        cert_der: &der,
        cert_pem: &chain,
        cert_id: &cert_id,
        ca: &vendor_ca,
        client_id: serial,
    };
    let done = jitp::provision(cloud.store(), &request).unwrap();
    assert_eq!(done.status, CertificateStatus::Active);
    assert_eq!(done.serial.as_deref(), Some(serial));
    assert_eq!(cr_state(&cloud, serial), "CR_WHITELISTED");
    let pending = jitp::pending_registered_events(cloud.store()).unwrap();
    assert_eq!(pending.len(), 1, "the event waits in the outbox");
    assert_eq!(pending[0].certificate_id, cert_id);

    // The next start hands it to rule_jitp before devices are let in.
    let mut events = bus.subscribe();
    let running = runtime::start(&cloud, "127.0.0.1:0").await.unwrap();
    assert_eq!(cr_state(&cloud, serial), "CR_THING_CREATED");
    assert!(jitp::pending_registered_events(cloud.store())
        .unwrap()
        .is_empty());
    let log = cloud.store().list_events_for(serial, 100).unwrap();
    assert!(log.iter().any(|e| e.kind == "jitp.redelivered"), "{log:?}");
    // rule_jitp's invocation and its function's result are on the device's timeline.
    let mut seen = Vec::new();
    while let Some(e) = events.try_recv() {
        seen.push(e);
    }
    let on_device = |kind: EventKind, text: &str| {
        seen.iter().any(|e| {
            e.kind == kind && e.summary.contains(text) && e.client_id.as_deref() == Some(serial)
        })
    };
    assert!(on_device(EventKind::Jitp, "redeliver"), "{seen:#?}");
    assert!(on_device(EventKind::Rule, "invoke"), "{seen:#?}");
    assert!(on_device(EventKind::Function, "returned"), "{seen:#?}");

    // And the device, whose cert is already ACTIVE, completes its rotation.
    run_device(device(&cloud, &running, serial), Goal::Onboard, None)
        .await
        .expect("the device completes after the redelivery");
    assert_eq!(cr_state(&cloud, serial), "CR_CERT_ROTATION_COMPLETED");
    running.shutdown().await;

    // A clean stop leaves nothing to redeliver.
    assert!(jitp::pending_registered_events(cloud.store())
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_while_running_loads_the_rules_and_a_deactivated_cert_is_disconnected() {
    let tmp = tempfile::tempdir().unwrap();
    let cloud = LocalCloud::open(tmp.path(), EventBus::default()).unwrap();
    // The endpoint starts before the stack exists: no topic rules yet.
    let running = runtime::start(&cloud, "127.0.0.1:0").await.unwrap();
    cloud.deploy_sync().unwrap();
    cloud.init_sync(1).unwrap();
    let serial = SAMPLE_SERIAL;
    // rule_jitp must fire for the onboarding to complete.
    run_device(device(&cloud, &running, serial), Goal::Onboard, None)
        .await
        .expect("rule_jitp fired without a restart");
    assert_eq!(cr_state(&cloud, serial), "CR_CERT_ROTATION_COMPLETED");

    // Connect with the manufacturer cert and stay connected.
    let folder = CredentialFolder::new(cloud.data_dir().device_dir(serial));
    let roots = Arc::new(simulated_devices::tls::root_store(&folder).unwrap());
    let tls = simulated_devices::tls::client_config(
        &folder,
        Identity::Manufacturer,
        roots,
        Some("localhost"),
        None,
    )
    .unwrap();
    let addr = running.local_addr();
    let mut options = rumqttc::MqttOptions::new(serial, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(60));
    options.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(Arc::new(tls)),
    ));
    let (_client, mut eventloop) = rumqttc::AsyncClient::new(options, 8);
    let bound = Duration::from_secs(30);
    let connack = tokio::time::timeout(bound, async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack))) => return Ok(ack),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("CONNACK within the bound");
    assert!(connack.is_ok(), "{connack:?}");

    // `aws iot update-certificate --new-status INACTIVE`: the device is cut off.
    let man_cert_id = cloud
        .store()
        .get_item(DEVICE_TABLE, serial)
        .unwrap()
        .unwrap()[ATTR_MANUFACTURER_CERT_ID]
        .as_str()
        .unwrap()
        .to_string();
    cloud
        .set_certificate_status_sync(&man_cert_id, CertificateStatus::Inactive)
        .unwrap();
    let closed = tokio::time::timeout(bound, async {
        loop {
            if let Err(e) = eventloop.poll().await {
                return e.to_string();
            }
        }
    })
    .await
    .expect("the connection is closed after the deactivation, not at keepalive");
    assert!(!closed.is_empty());
    running.shutdown().await;
}
