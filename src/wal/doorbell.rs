//! The commit doorbell: the commit thread rings it after each commit, naming
//! the destinations the commit reached; the forwarder waits on it when it
//! has nothing to send, and takes the names to update its cached heads.
//!
//! It lives with the buffer because it announces the buffer's commits: the
//! batch stage rings it and the deliver stage waits on it, and neither needs
//! the other.

use crate::route::dest::Destination;
use std::collections::HashSet;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Wakes the forwarder: a commit happened (to these destinations), or it is
/// time to stop.
#[derive(Default)]
pub struct Doorbell {
    rung: Mutex<bool>,
    cv: Condvar,
    committed: Mutex<HashSet<Destination>>,
}

impl Doorbell {
    pub fn ring(&self) {
        if let Ok(mut r) = self.rung.lock() {
            *r = true;
            self.cv.notify_all();
        }
    }

    /// A commit reached these destinations.
    pub fn ring_for<'a>(&self, dests: impl Iterator<Item = &'a Destination>) {
        if let Ok(mut c) = self.committed.lock() {
            for d in dests {
                if !c.contains(d) {
                    c.insert(d.clone());
                }
            }
        }
        self.ring();
    }

    /// The destinations commits reached since the last call.
    pub fn take_committed(&self) -> HashSet<Destination> {
        self.committed
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default()
    }

    /// Waits until rung or `timeout`; clears the bell.
    pub fn wait(&self, timeout: Duration) {
        let Ok(guard) = self.rung.lock() else { return };
        let Ok((mut guard, _)) = self.cv.wait_timeout_while(guard, timeout, |r| !*r) else {
            return;
        };
        *guard = false;
    }
}
