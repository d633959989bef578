//! JITP's registered event, published as the cloud with at-least-once
//! delivery to `rule_jitp` (see `delivery.rs` and the outbox in
//! [`crate::cloud::local::jitp`]): once after JITP, and again at the next
//! start for every event whose function did not finish.

use super::delivery::Delivery;
use super::lifecycle;
use super::message::{Message, Origin};
use super::shared::Shared;
use crate::cloud::events::{CloudEvent, EventKind};
use crate::cloud::local::jitp::{self, PendingRegisteredEvent};
use crate::model::CertificateStatus;
use std::sync::Arc;
use std::time::Duration;

/// Publishes a registered event as the cloud, with a [`Delivery`] that
/// clears its outbox entry once `rule_jitp`'s function has handled it.
/// `done` also receives the outcome (redelivery waits on it).
pub fn publish_registered(
    shared: &Shared,
    event: &PendingRegisteredEvent,
    status: CertificateStatus,
    done: Option<tokio::sync::mpsc::UnboundedSender<bool>>,
) {
    let (topic, body) = lifecycle::certificate_registered(
        &event.certificate_id,
        &event.ca_certificate_id,
        status.as_str(),
        event.registered_at,
    );
    let store = shared.store.clone();
    let cert_id = event.certificate_id.clone();
    let delivery = Delivery::new(move |ok| {
        if ok {
            if let Err(e) = jitp::mark_delivered(&store, &cert_id) {
                tracing::warn!(cert_id, error = %e, "registered event handled, but its outbox entry could not be removed; it will be redelivered (harmless)");
            }
        } else {
            tracing::warn!(
                cert_id,
                "registered event not fully handled; kept for redelivery at the next start"
            );
        }
        if let Some(done) = done {
            let _ = done.send(ok);
        }
    });
    let origin = Origin {
        about: event.serial.clone(),
        delivery: Some(delivery),
        ..Origin::cloud()
    };
    shared
        .router
        .route(Message::from_cloud(topic, &body), origin);
}

/// Redelivers every registered event left in the outbox (the process died
/// between JITP and `rule_jitp`'s function) and waits until each was handled,
/// at most `wait`. Returns how many were redelivered.
pub async fn redeliver_registered(
    shared: &Arc<Shared>,
    wait: Duration,
) -> Result<usize, crate::store::StoreError> {
    let store = shared.store.clone();
    let pending = tokio::task::spawn_blocking(move || jitp::pending_registered_events(&store))
        .await
        .map_err(|e| crate::store::StoreError::Invalid {
            what: "registered-event outbox".into(),
            reason: format!("reading it stopped unexpectedly: {e}"),
        })?
        .map_err(|e| match e {
            jitp::JitpError::Store(e) => e,
            other => crate::store::StoreError::Invalid {
                what: "registered-event outbox".into(),
                reason: other.to_string(),
            },
        })?;
    if pending.is_empty() {
        return Ok(0);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for event in &pending {
        let serial = event.serial.clone().unwrap_or_default();
        tracing::info!(cert_id = %event.certificate_id, serial, "redelivering a registered event cut short by a stop");
        let detail = serde_json::to_value(event).unwrap_or_default();
        // Logged under the serial (the device's timeline), else the certificate.
        let subject = if serial.is_empty() {
            event.certificate_id.as_str()
        } else {
            serial.as_str()
        };
        if let Err(e) = shared
            .store
            .append_event("jitp.redelivered", subject, &detail)
        {
            tracing::warn!(error = %e, "event log write failed");
        }
        shared.bus.emit_with(|| {
            let mut e = CloudEvent::new(
                EventKind::Jitp,
                format!(
                    "redeliver registered event of certificate {} (cut short by a stop)",
                    &event.certificate_id[..event.certificate_id.len().min(12)]
                ),
            )
            .detail(detail.clone());
            if !serial.is_empty() {
                e = e.client(serial.clone());
            }
            e
        });
        publish_registered(
            shared,
            event,
            CertificateStatus::PendingActivation,
            Some(tx.clone()),
        );
    }
    drop(tx);
    let all = async {
        let mut handled = 0;
        while rx.recv().await.is_some() {
            handled += 1;
        }
        handled
    };
    match tokio::time::timeout(wait, all).await {
        Ok(handled) => tracing::info!(handled, "registered events redelivered"),
        Err(_) => tracing::warn!(
            "some redelivered registered events were not handled within {wait:?}; they stay in the outbox"
        ),
    }
    Ok(pending.len())
}
