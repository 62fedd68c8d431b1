//! A shared budget for request bodies held in memory, across connections
//! (`service.max_inflight_body_mb`).
//!
//! With it, memory for bodies is bounded by configuration whatever the number
//! of connections. A request's share grows **as its bytes arrive** (never from
//! a declared length: a peer that announces 8 MiB and sends nothing holds
//! nothing), and a request whose next bytes do not fit waits — TCP
//! backpressure on its producer — until others finish, at most
//! `BUDGET_WAIT_SECS`; then it is refused (503) so that partial bodies waiting
//! on each other can never hold the budget for good.
//!
//! Invariant: `free` plus the bytes of every live [`BodyGuard`] equals `total`.
//! A single request may always grow to the whole budget (a budget smaller than
//! one body is a configuration the validator refuses; gzip's second copy is
//! the only way past it, and then only up to `total`).

use std::time::Duration;

/// How often a request waiting for body budget looks again.
const BUDGET_POLL: Duration = Duration::from_millis(5);
/// How long a request waits for budget before it is refused with 503: long
/// enough for other bodies to be parsed and acked, short enough that bodies
/// stalled on each other free the budget quickly.
pub const BUDGET_WAIT_SECS: u64 = 10;

pub struct BodyBudget {
    free: std::cell::Cell<usize>,
    total: usize,
}

impl BodyBudget {
    pub fn new(total: usize) -> std::rc::Rc<BodyBudget> {
        std::rc::Rc::new(BodyBudget {
            free: std::cell::Cell::new(total),
            total,
        })
    }

    /// An empty share, to grow as bytes arrive.
    pub fn guard(self: &std::rc::Rc<Self>) -> BodyGuard {
        BodyGuard {
            budget: self.clone(),
            n: 0,
        }
    }

    pub fn free(&self) -> usize {
        self.free.get()
    }
}

/// A request's share of the budget; returns its bytes when dropped.
pub struct BodyGuard {
    budget: std::rc::Rc<BodyBudget>,
    n: usize,
}

impl BodyGuard {
    /// Grows this share to at least `bytes` (capped at the whole budget),
    /// waiting for others to release; `false` if that took longer than
    /// `BUDGET_WAIT_SECS`.
    pub async fn grow_to(&mut self, bytes: usize) -> bool {
        let want = bytes.min(self.budget.total);
        if want <= self.n {
            return true;
        }
        let extra = want.saturating_sub(self.n);
        let now = std::time::Instant::now();
        let give_up = now
            .checked_add(Duration::from_secs(BUDGET_WAIT_SECS))
            .unwrap_or(now);
        while self.budget.free.get() < extra {
            if std::time::Instant::now() >= give_up {
                return false;
            }
            smol::Timer::after(BUDGET_POLL).await;
        }
        self.budget
            .free
            .set(self.budget.free.get().saturating_sub(extra));
        self.n = want;
        true
    }

    pub fn bytes(&self) -> usize {
        self.n
    }
}

impl Drop for BodyGuard {
    fn drop(&mut self) {
        self.budget
            .free
            .set(self.budget.free.get().saturating_add(self.n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_budget_makes_a_request_wait_until_another_releases_its_bytes() {
        smol::block_on(async {
            let budget = BodyBudget::new(10);
            let mut first = budget.guard();
            assert!(first.grow_to(6).await);
            let mut second = budget.guard();
            let mut grow = Box::pin(second.grow_to(6));
            assert!(
                smol::future::poll_once(&mut grow).await.is_none(),
                "must wait"
            );
            drop(first);
            assert!(grow.await);
            assert_eq!(budget.free(), 4);
            drop(second);
            assert_eq!(budget.free(), 10);
            // More than the whole budget is capped to it, never a deadlock.
            let mut all = budget.guard();
            assert!(all.grow_to(1_000).await);
            assert_eq!(budget.free(), 0);
            drop(all);
            assert_eq!(budget.free(), 10);
        });
    }

    #[test]
    fn a_share_grows_by_the_difference_only() {
        smol::block_on(async {
            let budget = BodyBudget::new(100);
            let mut g = budget.guard();
            assert!(g.grow_to(30).await);
            assert!(g.grow_to(20).await, "shrinking asks for nothing");
            assert!(g.grow_to(50).await);
            assert_eq!((g.bytes(), budget.free()), (50, 50));
        });
    }
}
