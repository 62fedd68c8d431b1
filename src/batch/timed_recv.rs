//! A blocking receive from an async channel with a deadline, for the commit
//! thread (`batcher::next_cut`): the next cut, or word that the warm
//! tier's checkpoint is due.
//!
//! Why not `smol::block_on(or(recv, Timer::after(wait)))`, as before: a
//! smol timer lives in the process's one reactor, so each wait of the commit
//! thread (one a cut, while a checkpoint is pending: always, with a rule)
//! added a timer there and woke the reactor's thread to take it in and out
//! again. That was 8 ns a line of the `async-io` thread and more of the
//! executor's in the ingest bench (`benches/cpu.rs`, profiled): a tenth of a
//! downsampling rule's cost. Here the thread parks itself, with the
//! standard library's timed park, and the channel's waker unparks it.
//!
//! Invariant: a value is never lost: the receive future is polled once more
//! after every wake-up, and dropping it on a timeout drops only its place in
//! the queue of listeners; a value sent just as the deadline passes stays
//! queued for the next call (as with the reactor timer before). A wake-up
//! that comes as the wait times out leaves the thread's park token set: the
//! next park of this thread returns at once, and polls again (harmless).
//! A value waiting wins over a deadline passed, as `or(recv, timer)` did.

use smol::channel::{Receiver, RecvError};
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

/// Unparks the thread that polls (the commit thread, parked in
/// `recv_until`).
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// The next value of `rx`; `Ok(None)` once `deadline` passed without one;
/// `Err` when every sender is gone and the channel is empty.
pub fn recv_until<T>(rx: &Receiver<T>, deadline: Instant) -> Result<Option<T>, RecvError> {
    // Nothing to wait for: no waker, no park (the common case under load,
    // when cuts queue up for the commit thread).
    match rx.try_recv() {
        Ok(v) => return Ok(Some(v)),
        Err(smol::channel::TryRecvError::Closed) => return Err(RecvError),
        Err(smol::channel::TryRecvError::Empty) => {}
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut recv = std::pin::pin!(rx.recv());
    loop {
        if let Poll::Ready(r) = recv.as_mut().poll(&mut cx) {
            return r.map(Some);
        }
        // A wake-up (or a spurious return of `park_timeout`) polls again;
        // only the clock says the wait is over.
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::park_timeout(deadline - now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_value_waiting_is_taken_at_once_and_an_empty_channel_times_out() {
        let (tx, rx) = smol::channel::unbounded::<u32>();
        tx.send_blocking(7).expect("open");
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(recv_until(&rx, far), Ok(Some(7)));
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(recv_until(&rx, soon), Ok(None));
        assert!(Instant::now() >= soon, "not before the deadline");
        // A deadline already past: a value waiting is still taken.
        tx.send_blocking(8).expect("open");
        assert_eq!(recv_until(&rx, Instant::now()), Ok(Some(8)));
    }

    /// Values sent from another thread while the receiver is parked, at
    /// every moment (before, during and after its park), each arrive once
    /// and in order; none is lost to a wait that timed out.
    #[test]
    fn values_sent_while_the_receiver_waits_arrive_each_once_in_order() {
        let (tx, rx) = smol::channel::bounded::<u32>(2);
        let n = 2_000u32;
        let sender = std::thread::spawn(move || {
            for i in 0..n {
                if i % 7 == 0 {
                    std::thread::sleep(Duration::from_micros(u64::from(i % 300)));
                }
                tx.send_blocking(i).expect("receiver alive");
            }
        });
        let mut got = Vec::new();
        let mut timeouts = 0;
        loop {
            // Short deadlines, so that many waits time out with the sender
            // mid-send.
            let deadline = Instant::now() + Duration::from_micros(50);
            match recv_until(&rx, deadline) {
                Ok(Some(v)) => got.push(v),
                Ok(None) => timeouts += 1,
                Err(RecvError) => break,
            }
        }
        sender.join().expect("sender");
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        assert!(timeouts > 0, "some waits timed out (the case tried)");
    }

    #[test]
    fn a_closed_empty_channel_is_an_error_and_a_closed_one_with_values_gives_them_first() {
        let (tx, rx) = smol::channel::unbounded::<u32>();
        tx.send_blocking(1).expect("open");
        drop(tx);
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(recv_until(&rx, far), Ok(Some(1)));
        assert_eq!(recv_until(&rx, far), Err(RecvError));
        // Closed while the receiver waits: it wakes, and is told.
        let (tx, rx) = smol::channel::unbounded::<u32>();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(tx);
        });
        assert_eq!(recv_until(&rx, far), Err(RecvError));
        closer.join().expect("closer");
    }
}
