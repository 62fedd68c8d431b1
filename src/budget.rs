//! A shared budget for request bodies held in memory, across connections
//! (`service.max_inflight_body_mb`).
//!
//! With it, memory for bodies is bounded by configuration whatever the number
//! of connections: a request that does not fit waits — TCP backpressure on its
//! producer — until others finish. Invariant: `free` plus the bytes of every
//! live [`BodyGuard`] equals `total`.

/// How often a request waiting for body budget looks again.
const BUDGET_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// Bytes of request bodies held at once across all connections
/// (`service.max_inflight_body_mb`): with it, memory for bodies is bounded by
/// configuration whatever the number of connections. A request that does not
/// fit waits (TCP backpressure on its producer) until others finish.
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

    pub async fn reserve(self: &std::rc::Rc<Self>, n: usize) -> BodyGuard {
        let n = n.min(self.total);
        while self.free.get() < n {
            smol::Timer::after(BUDGET_POLL).await;
        }
        self.free.set(self.free.get() - n);
        BodyGuard {
            budget: self.clone(),
            n,
        }
    }

    pub fn free(&self) -> usize {
        self.free.get()
    }
}

/// Returns its bytes to the budget when dropped.
pub struct BodyGuard {
    budget: std::rc::Rc<BodyBudget>,
    n: usize,
}

impl Drop for BodyGuard {
    fn drop(&mut self) {
        self.budget.free.set(self.budget.free.get() + self.n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_budget_makes_a_request_wait_until_another_releases_its_bytes() {
        smol::block_on(async {
            let budget = BodyBudget::new(10);
            let first = budget.reserve(6).await;
            let mut second = Box::pin(budget.reserve(6));
            assert!(
                smol::future::poll_once(&mut second).await.is_none(),
                "must wait"
            );
            drop(first);
            let second = second.await;
            assert_eq!(budget.free(), 4);
            drop(second);
            assert_eq!(budget.free(), 10);
            // More than the whole budget is capped to it, never a deadlock.
            let all = budget.reserve(1_000).await;
            assert_eq!(budget.free(), 0);
            drop(all);
        });
    }
}
