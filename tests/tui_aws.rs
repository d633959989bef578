//! The TUI on `--backend aws`, and the observer that feeds its traffic pane.
//!
//! moto has no MQTT data plane, so a real broker stands in for AWS IoT's:
//! Debian's `mosquitto` on loopback with TLS (a server certificate from a
//! test CA, SAN `localhost`), which the observer dials through
//! `--iot-endpoint localhost:<port>` with the test CA in its `root-ca.pem`.
//! Messages published on the broker with `mosquitto_pub` to the topics AWS
//! IoT uses must come out of the observer as the events the local endpoint
//! emits, and show in the traffic pane of the real binary in tmux.
//!
//! The TUI test runs against both targets of the AWS suite: on jitpilot's
//! local cloud (`jitpilot serve`) nothing stands in — the observer dials
//! what DescribeEndpoint answers with the identity init made, and a real
//! device's onboarding shows in the traffic pane.
//!
//! The broker is in `support/broker.rs`. Needs `mosquitto`, `mosquitto_pub`
//! and `tmux` (scripts/test installs them) and moto's server
//! (`moto[server]`). Every wait polls a condition under a deadline.

mod support;

use jitpilot::cloud::aws::observer::{Observer, ObserverState, CERT_FILE, KEY_FILE, ROOT_CA_FILE};
use jitpilot::cloud::aws::{AwsCloud, AwsOptions, AMAZON_ROOT_CAS};
use jitpilot::cloud::{Cloud, CloudEvent, EventBus, EventKind, EventReceiver};
use jitpilot::pki::Issued;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::aws::{fake_bootstrap, jitpilot_command, json_of, Target, FOREIGN_ENV};
use support::broker::{client_cert, test_ca, Broker};
use support::tmux::{quote, Tmux, TIMEOUT};
use support::Bounded;
use tokio::sync::watch;

const SERIAL: &str = "IUQWXALODJESC1";

/// Writes an observer identity where `init` puts it.
fn write_identity(data: &Path, cert: &Issued, roots_pem: &str) -> PathBuf {
    let dir = data.join("aws").join("observer");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join(CERT_FILE), &cert.cert_pem).expect("write");
    std::fs::write(dir.join(KEY_FILE), &cert.key_pem).expect("write");
    std::fs::write(dir.join(ROOT_CA_FILE), roots_pem).expect("write");
    dir
}

/// The AWS backend over `data`, dialling `iot_endpoint` for MQTT. No AWS
/// API is called: the observer needs only the endpoint and its identity.
async fn aws_cloud(data: &Path, iot_endpoint: String) -> AwsCloud {
    let mut options = AwsOptions::new(
        data.to_path_buf(),
        Some("us-east-1".into()),
        Some("http://127.0.0.1:9".into()),
    );
    options.iot_endpoint = Some(iot_endpoint);
    // Static test credentials: the process's environment is never changed.
    options.credentials = Some(aws_credential_types::Credentials::new(
        "testing",
        "testing",
        None,
        None,
        "jitpilot-tests",
    ));
    AwsCloud::connect(options, EventBus::default())
        .await
        .expect("the AWS backend opens without calling AWS")
}

/// Waits until the observer's state satisfies `ready`; returns it.
async fn wait_state(
    state: &mut watch::Receiver<ObserverState>,
    what: &str,
    ready: impl Fn(&ObserverState) -> bool,
) -> ObserverState {
    let waited = tokio::time::timeout(TIMEOUT, async {
        state.wait_for(|s| ready(s)).await.map(|s| s.clone())
    })
    .await;
    match waited {
        Ok(Ok(s)) => s,
        _ => panic!(
            "timed out waiting for {what}; the observer is {:?}",
            *state.borrow()
        ),
    }
}

/// Waits for the first event on the stream that satisfies `wanted`.
async fn wait_event(
    events: &mut EventReceiver,
    what: &str,
    wanted: impl Fn(&CloudEvent) -> bool,
) -> Arc<CloudEvent> {
    let found = tokio::time::timeout(TIMEOUT, async {
        while let Some(ev) = events.recv().await {
            if wanted(&ev) {
                return Some(ev);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(ev)) => ev,
        _ => panic!("timed out waiting for {what} on the event stream"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_turns_broker_messages_into_cloud_events() {
    let broker = Broker::start(true);
    let data = tempfile::tempdir().expect("tempdir");
    let observer_cert = client_cert(&broker.ca, "jitpilot-observer");
    write_identity(data.path(), &observer_cert, &broker.ca.cert_pem);
    let cloud = aws_cloud(data.path(), broker.endpoint()).await;
    let mut events = cloud.events();

    let observer = Observer::start(cloud.clone());
    assert!(observer.client_id().starts_with("jitpilot-observer-"));
    let mut state = observer.state();
    let subscribed = wait_state(&mut state, "the subscription", |s| {
        matches!(s, ObserverState::Subscribed { .. })
    })
    .await;
    assert_eq!(
        subscribed,
        ObserverState::Subscribed {
            endpoint: broker.endpoint(),
            client_id: observer.client_id().to_string(),
        }
    );
    // The state travels on the stream too: that is how the TUI learns it.
    wait_event(&mut events, "the subscribed state", |ev| {
        ObserverState::from_event(ev) == Some(subscribed.clone())
    })
    .await;

    broker.publish(
        &format!("$aws/events/presence/connected/{SERIAL}"),
        &json!({"clientId": SERIAL, "eventType": "connected", "principalIdentifier": "c0ffee"})
            .to_string(),
    );
    let connected = wait_event(&mut events, "the presence event", |ev| {
        ev.kind == EventKind::Connection && ObserverState::from_event(ev).is_none()
    })
    .await;
    assert_eq!(connected.client_id.as_deref(), Some(SERIAL));
    assert_eq!(connected.summary, format!("{SERIAL} connected"));
    assert_eq!(connected.detail["certificateId"], "c0ffee");

    let topic = format!("/cert-rotation/create-man-cert/{SERIAL}/rqst");
    broker.publish(&topic, r#"{"csr":"-----BEGIN CERTIFICATE REQUEST-----"}"#);
    let request = wait_event(&mut events, "the CSR request", |ev| {
        ev.topic.as_deref() == Some(topic.as_str())
    })
    .await;
    assert!(matches!(
        request.kind,
        EventKind::PacketIn {
            packet: "PUBLISH",
            ..
        }
    ));
    assert_eq!(request.client_id.as_deref(), Some(SERIAL));
    assert!(request.detail["payload"]["csr"].is_string());

    let answer = format!("/cert-rotation/create-man-cert/{SERIAL}/rspn");
    broker.publish(&answer, r#"{"cert_id":"abc"}"#);
    let response = wait_event(&mut events, "the response", |ev| {
        ev.topic.as_deref() == Some(answer.as_str())
    })
    .await;
    assert!(matches!(response.kind, EventKind::PacketOut { .. }));

    observer.stop().await;
    assert_eq!(*state.borrow_and_update(), ObserverState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_observer_identity_is_explained_and_recovers_once_fixed() {
    let broker = Broker::start(true);
    let data = tempfile::tempdir().expect("tempdir");
    let cloud = aws_cloud(data.path(), broker.endpoint()).await;

    // No identity: waiting, with what to do.
    let observer = Observer::start(cloud.clone());
    let mut state = observer.state();
    let waiting = state.borrow().clone();
    match &waiting {
        ObserverState::Waiting { reason } => {
            assert!(reason.contains("run init"), "{reason}")
        }
        other => panic!("expected waiting for an identity, got {other:?}"),
    }

    // Amazon's roots do not vouch for this broker: the error names the file.
    let cert = client_cert(&broker.ca, "jitpilot-observer");
    let dir = write_identity(data.path(), &cert, AMAZON_ROOT_CAS);
    // Init announces the identity as a registry change; the observer wakes.
    cloud.emit(CloudEvent::new(
        EventKind::Registry,
        "observer identity created",
    ));
    let failed = wait_state(&mut state, "a TLS trust failure", |s| {
        matches!(s, ObserverState::Failed { .. })
    })
    .await;
    let ObserverState::Failed { reason } = failed else {
        unreachable!()
    };
    assert!(
        reason.contains("not trusted") && reason.contains(ROOT_CA_FILE),
        "{reason}"
    );

    // A certificate from a CA the endpoint does not know: rejected.
    let stranger = client_cert(&test_ca("another CA"), "jitpilot-observer");
    write_identity(data.path(), &stranger, &broker.ca.cert_pem);
    wait_state(&mut state, "the endpoint rejecting the certificate", |s| {
        matches!(s, ObserverState::Failed { reason } if reason.contains("rejected the observer's certificate"))
    })
    .await;

    // A key that is not a key: named, with what to do.
    std::fs::write(dir.join(KEY_FILE), "garbage").expect("write");
    let broken = wait_state(
        &mut state,
        "the broken key",
        |s| matches!(s, ObserverState::Failed { reason } if reason.contains(KEY_FILE)),
    )
    .await;
    assert!(format!("{broken:?}").contains("run init"), "{broken:?}");

    // Fixed: it subscribes on its own, with backoff, no restart needed.
    write_identity(data.path(), &cert, &broker.ca.cert_pem);
    wait_state(&mut state, "the subscription after the fix", |s| {
        matches!(s, ObserverState::Subscribed { .. })
    })
    .await;
    observer.stop().await;
}

#[test]
fn the_tui_on_aws_deploys_inits_and_shows_observed_traffic_on_moto() {
    the_tui_on_aws_deploys_inits_and_shows_observed_traffic(Target::moto());
}

#[test]
fn the_tui_on_aws_deploys_inits_and_shows_observed_traffic_on_jitpilot() {
    the_tui_on_aws_deploys_inits_and_shows_observed_traffic(Target::jitpilot());
}

fn the_tui_on_aws_deploys_inits_and_shows_observed_traffic(target: Target) {
    // On moto: moto's observer certificate is not signed by the broker's
    // CA, so the broker does not ask for one here (AWS would check it; moto
    // can't). On jitpilot the local endpoint checks it, as AWS does.
    let broker = target.moto_server().map(|_| Broker::start(false));
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let package = fake_bootstrap(tmp.path());

    let tmux = Tmux::start(
        &format!("jitpilot-tui-aws-{}-{}", target.name(), std::process::id()),
        160,
        50,
    );
    tmux.wait_for("a shell prompt", |s| s.contains("ready$"));
    // Dummy credentials, no profile files: the same isolation as the
    // headless AWS tests.
    let unset: String = FOREIGN_ENV.iter().map(|v| format!("-u {v} ")).collect();
    // The target's key (and on jitpilot the endpoint CA `jitpilot env`
    // exports); on moto the broker is the data endpoint.
    let target_env: String = target
        .env()
        .iter()
        .map(|(k, v)| format!("{k}={} ", quote(v)))
        .collect();
    let iot_endpoint = broker
        .as_ref()
        .map(|b| format!("--iot-endpoint {} ", b.endpoint()))
        .unwrap_or_default();
    let command = format!(
        "env {unset}{target_env}\
         AWS_CONFIG_FILE=/nonexistent/c AWS_SHARED_CREDENTIALS_FILE=/nonexistent/s \
         AWS_EC2_METADATA_DISABLED=true JITPILOT_LAMBDA_PACKAGE={} \
         {} --backend aws --endpoint-url {} --region us-east-1 {iot_endpoint}--api-addr off --data-dir {}",
        quote(&package.display().to_string()),
        quote(env!("CARGO_BIN_EXE_jitpilot")),
        target.url(),
        quote(&data.display().to_string()),
    );
    tmux.keys(&[&command, "Enter"]);
    tmux.wait_for("the TUI on AWS, waiting for an observer identity", |s| {
        s.contains("aws us-east-1 cloud")
            && broker
                .as_ref()
                .is_none_or(|b| s.contains(&format!("endpoint {}", b.endpoint())))
            && s.contains("observer waiting")
            && s.contains("not deployed")
    });

    tmux.keys(&["d"]);
    tmux.wait_for("moto's stack in the stack pane", |s| {
        s.contains("CertRotation · CREATE_COMPLETE")
    });

    tmux.keys(&["i"]);
    tmux.wait_for("the CAs in the CAs pane", |s| {
        s.contains("Vendor CA ACTIVE") && s.contains("Manufacturer CA ACTIVE")
    });
    let Some(broker) = broker else {
        // jitpilot: the identity init made trusts the endpoint CA and is
        // accepted by the endpoint, its policy allows the subscription.
        tmux.wait_for("the observer subscribed", |s| {
            s.contains("observer subscribed")
        });
        // A device onboards for real; its traffic reaches the pane.
        let onboarded = json_of(
            &jitpilot_command(
                &target,
                &data,
                None,
                &["--json", "device", SERIAL, "onboard"],
            )
            .bounded_output()
            .expect("device runs"),
        );
        assert_eq!(
            onboarded["crState"], "CR_CERT_ROTATION_COMPLETED",
            "{onboarded}"
        );
        tmux.wait_for("the observed walkthrough in the traffic pane", |s| {
            s.contains(&format!("{SERIAL} connected"))
                && s.contains("create-man-cert")
                && s.contains("ack-man-cert")
        });
        tmux.quit_and_check_the_terminal();
        return;
    };
    // Init's last step is the observer identity, with Amazon's roots in its
    // root-ca.pem: the observer picks it up at once and cannot trust this
    // broker. Once it says so, init has written every file.
    tmux.wait_for("the observer failing to trust the broker", |s| {
        s.contains("observer retrying")
    });
    let root_ca = data.join("aws").join("observer").join(ROOT_CA_FILE);
    assert_eq!(
        std::fs::read_to_string(&root_ca).expect("init wrote root-ca.pem"),
        AMAZON_ROOT_CAS
    );
    // The broker's CA stands in for Amazon's; the next retry connects.
    std::fs::write(&root_ca, &broker.ca.cert_pem).expect("write the test CA");
    tmux.wait_for("the observer subscribed", |s| {
        s.contains("observer subscribed")
    });

    broker.publish(
        &format!("$aws/events/presence/connected/{SERIAL}"),
        &json!({"clientId": SERIAL, "eventType": "connected"}).to_string(),
    );
    broker.publish(
        &format!("/cert-rotation/create-man-cert/{SERIAL}/rqst"),
        r#"{"csr":"-----BEGIN CERTIFICATE REQUEST-----"}"#,
    );
    tmux.wait_for("the observed traffic in the traffic pane", |s| {
        s.contains(&format!("{SERIAL} connected")) && s.contains("create-man-cert")
    });
    tmux.quit_and_check_the_terminal();
}

#[test]
fn aws_problems_are_explained_on_screen() {
    let tmux = Tmux::start(
        &format!("jitpilot-tui-aws-bad-{}", std::process::id()),
        140,
        40,
    );
    tmux.wait_for("a shell prompt", |s| s.contains("ready$"));
    let data = tempfile::tempdir().expect("tempdir");
    let bin = quote(env!("CARGO_BIN_EXE_jitpilot"));
    let dir = quote(&data.path().display().to_string());
    // Nothing from the environment or profile files: no region, no keys.
    let bare = "env -u AWS_PROFILE -u AWS_REGION -u AWS_DEFAULT_REGION -u AWS_ACCESS_KEY_ID \
                -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL \
                AWS_CONFIG_FILE=/nonexistent/c AWS_SHARED_CREDENTIALS_FILE=/nonexistent/s \
                AWS_EC2_METADATA_DISABLED=true";

    // No region: the whole screen says so, and how to give one.
    tmux.keys(&[
        &format!("{bare} {bin} --backend aws --data-dir {dir}"),
        "Enter",
    ]);
    tmux.wait_for("the no-region explanation", |s| {
        s.contains("The AWS backend could not start") && s.contains("--region")
    });
    tmux.keys(&["q"]);
    tmux.wait_quit();

    // A region but no credentials: the first read-back says what to do;
    // the observer waits for an identity; nothing crashes.
    tmux.keys(&[
        &format!(
            "{bare} {bin} --backend aws --region eu-west-1 --endpoint-url http://127.0.0.1:9 --data-dir {dir}"
        ),
        "Enter",
    ]);
    tmux.wait_for("the no-credentials explanation", |s| {
        s.contains("no AWS credentials") && s.contains("observer waiting")
    });
    // Only the read-back writes that status line here (the observer's
    // state is in the header, and it does not change without an identity).
    tmux.quit_and_check_shell();
}
