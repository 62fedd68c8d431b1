//! The ring: accepted points waiting for the next commit.
//!
//! Entries sit in a fixed-capacity `heapless::Deque` (no growth, whatever the
//! load) and their payload bytes are charged against a byte budget set by
//! `performance.ring_buffer_mb`. A push that would pass either bound is refused:
//! HTTP answers 503 + `Retry-After`, UDP counts a drop. Nothing else in the
//! ingest path holds points, so memory is bounded by configuration, not by load
//! or by the length of an outage (the outage backlog lives on disk).
//!
//! Invariant: `bytes` is the sum of the payload lengths of the entries.
//! The ring lives on the executor thread only.

use crate::route::dest::Destination;
use crate::wal::WalError;
use heapless::Deque;

/// Entries the ring can hold: a request or datagram is one entry. 4096 covers
/// every connection's request plus a burst of UDP datagrams between two commits.
pub const RING_ENTRIES: usize = 4096;

/// Why points were not stored; sent back to the waiting request.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    RingFull,
    /// The write names one destination more than `service.max_destinations`.
    TooManyDestinations {
        max: usize,
    },
    /// The write's stored form is larger than the whole ring: it can never
    /// fit, so 413 rather than a 503 to retry for ever.
    LargerThanRing {
        bytes: usize,
        capacity: usize,
    },
    Storage(WalError),
    ShuttingDown,
    /// Lines without a timestamp while the wall clock is not set (below
    /// `clock::WALL_CLOCK_FLOOR_NS`): stamping them would store 1970.
    ClockUnset {
        lines: usize,
    },
}

pub type AckSender = smol::channel::Sender<Result<(), Refusal>>;

pub struct Entry {
    pub dest: Destination,
    pub points: usize,
    pub min_ts: i64,
    pub max_ts: i64,
    pub payload: Vec<u8>,
    /// Where to report the commit; `None` for UDP (fire and forget).
    pub ack: Option<AckSender>,
    pub arrived: std::time::Instant,
    /// Points `hissrv restore` sends back from an archive: never owed to
    /// an archive again (`batch/cold.rs`).
    pub restored: bool,
}

pub struct Ring {
    /// Boxed: the deque is stored inline wherever the ring is, and 4096 inline
    /// entries (~480 KiB) were copied through the stack on construction at
    /// size-optimised levels, resident for good (measured: +1 MiB idle RSS).
    entries: Deque<Box<Entry>, RING_ENTRIES>,
    bytes: usize,
    capacity_bytes: usize,
    points: usize,
}

impl Ring {
    pub fn new(capacity_bytes: usize) -> Ring {
        Ring {
            entries: Deque::new(),
            bytes: 0,
            capacity_bytes,
            points: 0,
        }
    }

    /// Adds an entry, or gives it back when the ring is full. (The entry
    /// is moved, not copied, either way: boxing it to shrink the `Err`
    /// would cost an allocation a write.)
    #[allow(clippy::result_large_err)]
    pub fn push(&mut self, entry: Entry) -> Result<(), Entry> {
        if self.bytes + entry.payload.len() > self.capacity_bytes {
            return Err(entry);
        }
        let (len, points) = (entry.payload.len(), entry.points);
        self.entries.push_back(Box::new(entry)).map_err(|e| *e)?;
        self.bytes += len;
        self.points += points;
        Ok(())
    }

    /// Adds the entries of one write together, or none of them: a write
    /// routed to several buckets is stored whole or refused whole.
    pub fn push_all(&mut self, entries: Vec<Entry>) -> Result<(), Vec<Entry>> {
        let bytes: usize = entries.iter().map(|e| e.payload.len()).sum();
        if self.bytes + bytes > self.capacity_bytes
            || self.entries.len() + entries.len() > self.entries.capacity()
        {
            return Err(entries);
        }
        for e in entries {
            // Cannot fail: room was checked above.
            if let Err(e) = self.push(e) {
                log::error!(
                    "ring refused an entry it had room for ({} points)",
                    e.points
                );
            }
        }
        Ok(())
    }

    /// Takes whole entries from the front until `max_points` would be passed
    /// (at least one entry, so an oversized request still moves).
    pub fn take(&mut self, max_points: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut points = 0;
        while let Some(front) = self.entries.front() {
            if !out.is_empty() && points + front.points > max_points {
                break;
            }
            let Some(e) = self.entries.pop_front() else {
                break;
            };
            points += e.points;
            self.bytes -= e.payload.len();
            self.points -= e.points;
            out.push(*e);
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn points(&self) -> usize {
        self.points
    }

    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// How long the oldest entry has waited.
    pub fn oldest_age(&self) -> std::time::Duration {
        self.entries
            .front()
            .map_or(std::time::Duration::ZERO, |e| e.arrived.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(points: usize, bytes: usize) -> Entry {
        Entry {
            dest: Destination {
                db: "d".into(),
                rp: String::new(),
            },
            points,
            min_ts: 0,
            max_ts: 0,
            payload: vec![b'x'; bytes],
            ack: None,
            arrived: std::time::Instant::now(),
            restored: false,
        }
    }

    #[test]
    fn a_push_past_the_byte_budget_is_refused_and_nothing_grows() {
        let mut r = Ring::new(100);
        r.push(entry(1, 60)).ok().unwrap();
        assert!(r.push(entry(1, 41)).is_err());
        assert_eq!(r.bytes(), 60);
        r.push(entry(1, 40)).ok().unwrap();
        assert_eq!((r.bytes(), r.points()), (100, 2));
    }

    #[test]
    fn a_push_past_the_entry_capacity_is_refused() {
        let mut r = Ring::new(usize::MAX);
        for _ in 0..RING_ENTRIES {
            r.push(entry(1, 1)).ok().unwrap();
        }
        assert!(r.push(entry(1, 1)).is_err());
    }

    #[test]
    fn a_routed_write_goes_in_whole_or_not_at_all() {
        let mut r = Ring::new(100);
        r.push(entry(1, 50)).ok().unwrap();
        assert!(r.push_all(vec![entry(1, 30), entry(1, 30)]).is_err());
        assert_eq!((r.bytes(), r.points()), (50, 1));
        r.push_all(vec![entry(1, 25), entry(2, 25)]).ok().unwrap();
        assert_eq!((r.bytes(), r.points()), (100, 4));
    }

    #[test]
    fn take_cuts_whole_entries_up_to_the_point_limit_and_frees_their_bytes() {
        let mut r = Ring::new(1000);
        for _ in 0..5 {
            r.push(entry(40, 10)).ok().unwrap();
        }
        assert_eq!(r.take(100).len(), 2);
        assert_eq!((r.bytes(), r.points()), (30, 120));
        // An entry larger than the limit still moves, alone.
        r.push(entry(500, 10)).ok().unwrap();
        assert_eq!(r.take(1000).len(), 4);
        assert!(r.is_empty());
    }
}
