//! Connections that have not finished their TLS handshake yet — the only
//! ones an attacker without a certificate can hold — as a pure table
//! (no IO, no clock): the listener asks it what to do, and it answers.
//!
//! Why this shape: a fixed pool of handshake slots, each held until a
//! timeout, lets a few hundred idle sockets (no certificate needed) lock
//! every device out. Instead every connection is accepted at once and
//! tracked here, with three bounds:
//!
//! - per peer IP address: a new connection beyond
//!   [`Limits::unauthenticated_per_ip`](super::limits::Limits) closes that
//!   address's oldest *idle* connection (one that has sent nothing; a real
//!   client sends its ClientHello at once), else its oldest;
//! - in total: the same, over every address;
//! - in time: the handshake deadline shrinks as the slots fill up.
//!
//! So idle sockets cost one table entry each, are evicted by newer
//! connections, and a device that starts its handshake is never the one
//! closed while idle ones remain.

use super::limits::{Limits, HANDSHAKE_TIMEOUT_UNDER_PRESSURE};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One connection's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    ip: IpAddr,
    /// Has sent bytes (its ClientHello): the handshake is under way.
    started: bool,
}

/// What the table decided for a new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The connection's id in the table ([`Handshakes::finished`] takes it back).
    pub id: u64,
    /// Connections to close now to make room, oldest first.
    pub evict: Vec<u64>,
    /// How long the new connection has to finish its handshake.
    pub deadline: Duration,
}

/// The unauthenticated connections, oldest first.
#[derive(Debug)]
pub struct Handshakes {
    per_ip: usize,
    total: usize,
    quiet_deadline: Duration,
    busy_deadline: Duration,
    next_id: u64,
    /// By id; ids grow, so iteration is oldest first.
    entries: BTreeMap<u64, Entry>,
    by_ip: HashMap<IpAddr, usize>,
    /// Connections closed to make room since start (the endpoint's stats).
    evicted: u64,
}

impl Handshakes {
    /// A table allowing `per_ip` connections per address and `total` in
    /// all, with the deadline going from `quiet_deadline` (empty) down to
    /// `busy_deadline` (full).
    pub fn new(
        per_ip: usize,
        total: usize,
        quiet_deadline: Duration,
        busy_deadline: Duration,
    ) -> Handshakes {
        Handshakes {
            per_ip: per_ip.max(1),
            total: total.max(1),
            quiet_deadline,
            busy_deadline: busy_deadline.min(quiet_deadline),
            next_id: 1,
            entries: BTreeMap::new(),
            by_ip: HashMap::new(),
            evicted: 0,
        }
    }

    /// A new connection from `ip`.
    pub fn admit(&mut self, ip: IpAddr) -> Admitted {
        let mut evict = Vec::new();
        while self.by_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            match self.oldest(Some(ip)) {
                Some(id) => {
                    self.remove(id);
                    evict.push(id);
                }
                None => break,
            }
        }
        while self.entries.len() >= self.total {
            match self.oldest(None) {
                Some(id) => {
                    self.remove(id);
                    evict.push(id);
                }
                None => break,
            }
        }
        self.evicted += evict.len() as u64;
        let deadline = self.deadline_for(ip);
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(id, Entry { ip, started: false });
        *self.by_ip.entry(ip).or_default() += 1;
        Admitted {
            id,
            evict,
            deadline,
        }
    }

    /// The connection sent its first bytes: it is no longer idle.
    pub fn started(&mut self, id: u64) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.started = true;
        }
    }

    /// The connection finished its handshake (or failed, or was closed).
    /// Unknown ids (already evicted) are ignored.
    pub fn finished(&mut self, id: u64) {
        self.remove(id);
    }

    /// Connections in the table now (mid-handshake).
    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    /// Connections closed to make room, since start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The deadline for a new connection from `ip`: the quiet deadline,
    /// shrinking linearly with how full the table (or that address's
    /// share of it) was when it came.
    fn deadline_for(&self, ip: IpAddr) -> Duration {
        let mine = self.by_ip.get(&ip).copied().unwrap_or(0) as f64 / self.per_ip as f64;
        let all = self.entries.len() as f64 / self.total as f64;
        let pressure = mine.max(all).clamp(0.0, 1.0);
        let span = self.quiet_deadline.saturating_sub(self.busy_deadline);
        self.quiet_deadline.saturating_sub(span.mul_f64(pressure))
    }

    /// The oldest idle connection (of `ip`, if given), else the oldest one.
    fn oldest(&self, ip: Option<IpAddr>) -> Option<u64> {
        let of_ip = |e: &Entry| ip.is_none_or(|ip| e.ip == ip);
        self.entries
            .iter()
            .find(|(_, e)| of_ip(e) && !e.started)
            .or_else(|| self.entries.iter().find(|(_, e)| of_ip(e)))
            .map(|(id, _)| *id)
    }

    fn remove(&mut self, id: u64) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        if let Some(n) = self.by_ip.get_mut(&entry.ip) {
            *n -= 1;
            if *n == 0 {
                self.by_ip.remove(&entry.ip);
            }
        }
    }
}

/// The handshake table and the tokens that close evicted connections.
pub struct HandshakeGate {
    /// Every connection not yet through its handshake.
    pub table: Handshakes,
    /// Cancelled to close one of them (evicted to make room).
    pub close: HashMap<u64, CancellationToken>,
}

impl HandshakeGate {
    /// A gate bounded by `limits`, `quiet_deadline` for a quiet endpoint.
    pub fn new(limits: &Limits, quiet_deadline: Duration) -> HandshakeGate {
        HandshakeGate {
            table: Handshakes::new(
                limits.unauthenticated_per_ip,
                limits.unauthenticated,
                quiet_deadline,
                HANDSHAKE_TIMEOUT_UNDER_PRESSURE.min(quiet_deadline),
            ),
            close: HashMap::new(),
        }
    }

    /// Connections closed to make room since start.
    pub fn evicted(&self) -> u64 {
        self.table.evicted()
    }

    /// Connections mid-handshake now.
    pub fn pending(&self) -> usize {
        self.table.pending()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn an_address_over_its_share_loses_its_oldest_idle_connection_first() {
        let mut table = Handshakes::new(3, 100, Duration::from_secs(10), Duration::from_secs(2));
        let a = table.admit(ip(1)).id;
        let b = table.admit(ip(1)).id;
        let c = table.admit(ip(1)).id;
        assert_eq!(table.pending(), 3);
        // `a` is mid-handshake: the idle `b` goes first.
        table.started(a);
        let d = table.admit(ip(1));
        assert_eq!(d.evict, vec![b]);
        // Another address is not touched by this one's flood.
        let other = table.admit(ip(2));
        assert!(other.evict.is_empty());
        let e = table.admit(ip(1));
        assert_eq!(e.evict, vec![c]);
        // Only started ones left besides `d`/`e`: `d` (idle) goes next.
        let f = table.admit(ip(1));
        assert_eq!(f.evict, vec![d.id]);
        assert_eq!(table.evicted(), 3);
        // Finished and evicted ids are forgotten; unknown ids are harmless.
        table.finished(a);
        table.finished(b);
        assert_eq!(table.pending(), 3);
    }

    #[test]
    fn the_total_bound_evicts_across_addresses_and_the_deadline_shrinks() {
        let mut table = Handshakes::new(10, 4, Duration::from_secs(10), Duration::from_secs(2));
        let first = table.admit(ip(1));
        assert_eq!(first.deadline, Duration::from_secs(10));
        for n in 2..=4 {
            assert!(table.admit(ip(n)).evict.is_empty());
        }
        let full = table.admit(ip(5));
        assert_eq!(full.evict, vec![first.id]);
        assert_eq!(table.pending(), 4);
        // Three of four taken before this one: 10 - 8 * 3/4 = 4 s.
        assert_eq!(full.deadline, Duration::from_secs(4));
        let mut quiet = Handshakes::new(2, 100, Duration::from_secs(10), Duration::from_secs(2));
        quiet.admit(ip(1));
        // Its address holds half its share.
        assert_eq!(quiet.admit(ip(1)).deadline, Duration::from_secs(6));
    }
}
