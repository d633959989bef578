//! The router without sockets: fan-out, `iot:Receive`, persistent sessions.

use super::*;
use crate::cloud::local::functions::FunctionRegistry;
use crate::cloud::local::policy::CompiledPolicy;
use bytes::Bytes;

fn router() -> (Arc<Router>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::store::Store::open(dir.path()).expect("store");
    let bus = EventBus::new(16);
    let rules = RulesEngine::new(store, bus.clone(), FunctionRegistry::new());
    (
        Arc::new(Router::new(bus, rules, &super::Limits::default())),
        dir,
    )
}

fn policy(client_id: &str, receive: &str) -> Arc<ConnectionPolicy> {
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["iot:Connect","iot:Publish","iot:Subscribe"],"Resource":"*"}},
            {{"Effect":"Allow","Action":"iot:Receive","Resource":"arn:aws:iot:us-east-1:123456789012:topic/{receive}"}}]}}"#
    );
    let compiled = CompiledPolicy::parse("p", &doc).expect("policy parses");
    Arc::new(ConnectionPolicy::new(vec![compiled], client_id, None, None))
}

fn link(router: &Router, client_id: &str, receive: &str) -> (Link, mpsc::Receiver<Box<Message>>) {
    let (tx, rx) = mpsc::channel(16);
    let link = Link {
        conn_id: router.next_conn_id(),
        tx,
        evict: CancellationToken::new(),
        policy: policy(client_id, receive),
        principal: format!("cert-of-{client_id}"),
        deactivated: CancellationToken::new(),
    };
    (link, rx)
}

fn message(topic: &str, qos: QoS) -> Message {
    Message {
        topic: topic.into(),
        payload: Bytes::from_static(b"{}"),
        qos,
        retain: false,
        properties: None,
    }
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let (router, _dir) = router();
    let (l, mut rx) = link(&router, "a", "*");
    router.attach("a", true, l);
    router
        .subscribe(
            "a",
            &[
                ("t/#".into(), QoS::AtMostOnce),
                ("t/x".into(), QoS::AtLeastOnce),
            ],
        )
        .expect("subscribe");
    router.route(message("t/x", QoS::AtLeastOnce), Origin::cloud());
    let got = rx.try_recv().expect("one delivery");
    assert_eq!(got.qos, QoS::AtLeastOnce);
    assert!(rx.try_recv().is_err(), "delivered twice");
}

#[tokio::test]
async fn dollar_topics_are_not_matched_by_a_leading_wildcard() {
    let (router, _dir) = router();
    let (l, mut rx) = link(&router, "a", "*");
    router.attach("a", true, l);
    router
        .subscribe("a", &[("#".into(), QoS::AtLeastOnce)])
        .expect("subscribe");
    router.route(
        message("$aws/events/presence/connected/x", QoS::AtLeastOnce),
        Origin::cloud(),
    );
    assert!(rx.try_recv().is_err());
}

#[tokio::test]
async fn receive_denied_skips_the_delivery() {
    let (router, _dir) = router();
    let (l, mut rx) = link(&router, "a", "allowed/*");
    router.attach("a", true, l);
    router
        .subscribe("a", &[("#".into(), QoS::AtLeastOnce)])
        .expect("subscribe");
    router.route(message("denied/1", QoS::AtLeastOnce), Origin::cloud());
    router.route(message("allowed/1", QoS::AtLeastOnce), Origin::cloud());
    assert_eq!(rx.try_recv().expect("allowed one").topic, "allowed/1");
    assert!(rx.try_recv().is_err());
    assert_eq!(router.counters.receive_denied.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn offline_persistent_sessions_queue_qos1_bounded_and_resume() {
    let (router, _dir) = router();
    let (l, _rx) = link(&router, "p", "*");
    let conn = l.conn_id;
    router.attach("p", false, l);
    router
        .subscribe("p", &[("q/#".into(), QoS::AtLeastOnce)])
        .expect("subscribe");
    router.detach("p", conn, vec![message("q/unacked", QoS::AtLeastOnce)]);
    router.route(message("q/zero", QoS::AtMostOnce), Origin::cloud());
    for _ in 0..MAX_QUEUED_MESSAGES + 5 {
        router.route(message("q/one", QoS::AtLeastOnce), Origin::cloud());
    }
    let (l, _rx) = link(&router, "p", "*");
    let attached = router.attach("p", false, l);
    assert!(attached.session_present);
    assert_eq!(attached.resumed.len(), MAX_QUEUED_MESSAGES);
    assert!(attached.resumed.iter().all(|m| m.qos == QoS::AtLeastOnce));
    assert!(router.counters.deliveries_dropped.load(Ordering::Relaxed) >= 5);
}

#[tokio::test]
async fn a_clean_session_forgets_and_a_duplicate_evicts() {
    let (router, _dir) = router();
    let (first, _rx1) = link(&router, "d", "*");
    let first_evict = first.evict.clone();
    let first_conn = first.conn_id;
    router.attach("d", false, first);
    router
        .subscribe("d", &[("x".into(), QoS::AtLeastOnce)])
        .expect("subscribe");
    let (second, mut rx2) = link(&router, "d", "*");
    let attached = router.attach("d", false, second);
    assert!(
        first_evict.is_cancelled(),
        "the older connection is told to go"
    );
    assert!(attached.session_present);
    // The evicted connection's unacknowledged message reaches the new one.
    router.detach("d", first_conn, vec![message("x", QoS::AtLeastOnce)]);
    assert_eq!(rx2.try_recv().expect("handed over").topic, "x");
    let (third, mut rx3) = link(&router, "d", "*");
    let attached = router.attach("d", true, third);
    assert!(!attached.session_present);
    router.route(message("x", QoS::AtLeastOnce), Origin::cloud());
    assert!(
        rx3.try_recv().is_err(),
        "a clean session has no old subscriptions"
    );
}

#[tokio::test]
async fn retained_messages_are_kept_replaced_and_cleared() {
    let (router, _dir) = router();
    let mut retained = message("r/1", QoS::AtLeastOnce);
    retained.retain = true;
    router.route(retained.clone(), Origin::cloud());
    let (l, _rx) = link(&router, "s", "*");
    router.attach("s", true, l);
    let got = router
        .subscribe("s", &[("r/+".into(), QoS::AtMostOnce)])
        .expect("subscribe");
    assert_eq!(got.len(), 1);
    assert!(got[0].retain);
    assert_eq!(got[0].qos, QoS::AtMostOnce);
    retained.payload = Bytes::new();
    router.route(retained, Origin::cloud());
    let got = router
        .subscribe("s", &[("r/#".into(), QoS::AtLeastOnce)])
        .expect("subscribe");
    assert!(got.is_empty(), "an empty retained payload clears the topic");
}

#[tokio::test]
async fn a_deactivated_certificate_disconnects_only_its_own_connections() {
    let (router, _dir) = router();
    let (a, _rx_a) = link(&router, "a", "*");
    let (b, _rx_b) = link(&router, "b", "*");
    let (a_token, b_token) = (a.deactivated.clone(), b.deactivated.clone());
    router.attach("a", true, a);
    router.attach("b", true, b);
    assert_eq!(
        router.disconnect_principal("cert-of-a"),
        vec!["a".to_string()]
    );
    assert!(a_token.is_cancelled());
    assert!(
        !b_token.is_cancelled(),
        "another certificate's device stays"
    );
    assert!(router.disconnect_principal("unknown").is_empty());
}
