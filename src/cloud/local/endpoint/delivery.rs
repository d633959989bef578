//! At-least-once delivery of the JITP registered event to `rule_jitp`.
//!
//! The registered event is the only thing that tells the rotation function a
//! device was provisioned; if it is lost, the device is stuck (see the outbox
//! in [`crate::cloud::local::jitp`]). A [`Delivery`] rides along with the
//! routed event ([`super::router::Origin::delivery`]); every Lambda action the
//! event triggers holds a [`Ticket`] until its function returns. When the
//! last holder lets go, the delivery's callback learns whether everything
//! finished — then the outbox entry is removed — or not (a function failed,
//! was not deployed, or the process is going down mid-invocation) — then the
//! entry stays and the runtime redelivers it on the next start.

use super::lifecycle;
use super::router::Origin;
use super::Shared;
use crate::cloud::events::{CloudEvent, EventKind};
use crate::cloud::local::jitp::{self, PendingRegisteredEvent};
use crate::model::CertificateStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type OnDone = Box<dyn FnOnce(bool) + Send>;

struct Inner {
    /// Set by a ticket whose function failed or never finished.
    failed: AtomicBool,
    on_done: Mutex<Option<OnDone>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let on_done = self
            .on_done
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(on_done) = on_done {
            on_done(!self.failed.load(Ordering::Acquire));
        }
    }
}

/// Tracks one routed message until every function it triggered finished.
/// Cheap to clone; the callback runs once, when the last clone is dropped.
#[derive(Clone)]
pub struct Delivery {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("failed", &self.inner.failed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Delivery {
    /// `on_done(true)` once every [`Ticket`] finished successfully (or none
    /// was taken: no rule had a function to run); `on_done(false)` otherwise.
    pub fn new(on_done: impl FnOnce(bool) + Send + 'static) -> Delivery {
        Delivery {
            inner: Arc::new(Inner {
                failed: AtomicBool::new(false),
                on_done: Mutex::new(Some(Box::new(on_done))),
            }),
        }
    }

    /// Marks the delivery as not done (an action could not even start).
    pub fn fail(&self) {
        self.inner.failed.store(true, Ordering::Release);
    }

    /// A ticket for one function invocation.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            delivery: self.clone(),
            finished: false,
        }
    }
}

/// Held by one function invocation. Dropped without [`Ticket::finish`] (the
/// task was cancelled) it counts as a failure, so the event is redelivered.
pub struct Ticket {
    delivery: Delivery,
    finished: bool,
}

impl Ticket {
    /// The invocation ended; `ok` is false when the function failed.
    pub fn finish(mut self, ok: bool) {
        if !ok {
            self.delivery.fail();
        }
        self.finished = true;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            self.delivery.fail();
        }
    }
}

/// Publishes a registered event as the cloud, with a [`Delivery`] that
/// clears its outbox entry once `rule_jitp`'s function has handled it.
/// `done` also receives the outcome (redelivery waits on it).
pub(super) fn publish_registered(
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
        .route(super::connection::cloud_message(topic, &body), origin);
}

/// Redelivers every registered event left in the outbox (the process died
/// between JITP and `rule_jitp`'s function) and waits until each was handled,
/// at most `wait`. Returns how many were redelivered.
pub(super) async fn redeliver_registered(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_once_every_ticket_finished_and_failed_if_one_was_dropped() {
        let (tx, rx) = std::sync::mpsc::channel();
        let delivery = Delivery::new(move |ok| tx.send(ok).unwrap());
        let a = delivery.ticket();
        let b = delivery.ticket();
        drop(delivery);
        a.finish(true);
        assert!(rx.try_recv().is_err(), "b still runs");
        b.finish(true);
        assert_eq!(rx.try_recv(), Ok(true));

        let (tx, rx) = std::sync::mpsc::channel();
        let delivery = Delivery::new(move |ok| tx.send(ok).unwrap());
        let cancelled = delivery.ticket();
        drop(delivery);
        drop(cancelled); // the task was dropped mid-invocation
        assert_eq!(rx.try_recv(), Ok(false));

        let (tx, rx) = std::sync::mpsc::channel();
        let delivery = Delivery::new(move |ok| tx.send(ok).unwrap());
        delivery.ticket().finish(false);
        drop(delivery);
        assert_eq!(rx.try_recv(), Ok(false));

        let (tx, rx) = std::sync::mpsc::channel();
        drop(Delivery::new(move |ok| tx.send(ok).unwrap()));
        assert_eq!(rx.try_recv(), Ok(true), "no function to run: handled");
    }
}
