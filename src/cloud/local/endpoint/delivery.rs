//! At-least-once delivery of the JITP registered event to `rule_jitp`.
//!
//! The registered event is the only thing that tells the rotation function a
//! device was provisioned; if it is lost, the device is stuck (see the outbox
//! in [`crate::cloud::local::jitp`]). A [`Delivery`] rides along with the
//! routed event (`Origin::delivery`, in `message.rs`); every Lambda action the
//! event triggers holds a [`Ticket`] until its function returns. When the
//! last holder lets go, the delivery's callback learns whether everything
//! finished — then the outbox entry is removed — or not (a function failed,
//! was not deployed, or the process is going down mid-invocation) — then the
//! entry stays and the runtime redelivers it on the next start
//! (`registered.rs` publishes and redelivers the event).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
