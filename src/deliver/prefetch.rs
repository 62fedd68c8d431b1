//! The next pack, made ready while the server works on the current one.
//!
//! A backlog drain alternates the forwarder's own work on a pack (read it,
//! decode it, gzip its body: ~1.3 µs a line) with the server's (parse and
//! store it: ~10 µs a line for influxd on this machine), one after the other.
//! So when a full pack goes out, its request runs on a short-lived helper
//! thread (scoped: it ends before the turn does) while the forwarder's own
//! thread reads, decodes and compresses the pack that comes next, on its own
//! connection (the request does not use it).
//!
//! # Invariants
//! - **Same as a fresh read.** A prefetched pack is used only by the very
//!   next delivery turn, and only if that turn delivers the same destination
//!   from the same head, with the same packing limits and gzip setting, and
//!   is not a probe; anything else drops it. Between the two turns the only
//!   change to the buffer is the end of the pack it followed (deleted, or its
//!   attempts counted), whose batches it does not hold: so it holds what a
//!   fresh read would, or fewer batches if commits arrived since (a smaller
//!   request, in the same order). Retention expiry runs on it at its turn, as
//!   on a fresh pack, and then its body is made again.
//! - **Only for a backlog.** It is made after a full pack (more is likely
//!   waiting) to a destination not backing off: a failed request or a failed
//!   delete drops it, and an outage never pays for reads it throws away.
//! - **Bounded.** One more pack in memory (at most `max_request_mb` of lines
//!   and its gzip), and one more thread only while a backlog's request is in
//!   flight. One pack read ahead at a time: while one destination's waits
//!   for its turn, other destinations' turns read none (with several
//!   destinations taking turns, one of them at a time is read ahead).
//! - A read that fails (an undecodable batch) is dropped here: the turn's own
//!   read meets it again and sets it aside as usual.

use crate::lineproto;
use crate::route::dest::Destination;
use crate::wal::{StoredBatch, Wal};
use std::sync::Mutex;

/// What a prefetched pack was read for; the next turn must want the same.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Key {
    pub dest: Destination,
    /// The pack's first batch: its destination's head at the next turn.
    pub from: i64,
    pub max_points: usize,
    pub max_bytes: usize,
    /// Whether its body was gzip-compressed (`influxdb.gzip`).
    pub gzip: bool,
}

/// A pack read ahead of its turn, with its body compressed.
pub(crate) struct Prefetched {
    pub key: Key,
    pub pack: Vec<StoredBatch>,
    pub zipped: Option<Zipped>,
}

/// Whether a pack filled at least half its limits: a backlog, worth
/// reading ahead of (a live trickle's next pack would only come out smaller).
pub(crate) fn is_full(pack: &[StoredBatch], max_points: usize, max_bytes: usize) -> bool {
    let points: usize = pack.iter().map(|b| b.points).sum();
    let bytes: usize = pack.iter().map(|b| b.payload.len()).sum();
    points.saturating_mul(2) >= max_points || bytes.saturating_mul(2) >= max_bytes
}

/// Runs `send` (the request) on a helper thread while `read_ahead` runs on
/// this one, and returns both results; `None` for the request if its thread
/// panicked (logged by the panic hook, and here: never swallowed). The request goes to the helper, not
/// the read: the packs stay in this thread's allocator arena, so the read
/// ahead costs one pack of memory and no second arena of them. If no thread
/// can be made, the request runs here and nothing is read ahead.
pub(crate) fn overlap<R: Send, F: FnOnce() -> R + Send>(
    send: F,
    read_ahead: impl FnOnce() -> Option<Prefetched>,
) -> (Option<R>, Option<Prefetched>) {
    // Shared so that this thread can still run it if no helper starts.
    let job = Mutex::new(Some(send));
    let run = || {
        job.lock()
            .ok()
            .and_then(|mut j| j.take())
            .map(|send| send())
    };
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("hissrv-send".into())
            .spawn_scoped(scope, run);
        match helper {
            Ok(h) => {
                let ahead = read_ahead();
                match h.join() {
                    Ok(r) => (r, ahead),
                    Err(_) => {
                        // The panic hook (main.rs) logged its message.
                        log::error!("the request's thread panicked; the pack stays");
                        (None, None)
                    }
                }
            }
            Err(e) => {
                log::debug!("no helper thread ({e}): the request runs alone");
                (run(), None)
            }
        }
    })
}

/// The pack a turn for `key` would read now, with its body compressed.
/// `max_lines`: the lines a request may carry now (lowered after a 413); a
/// pack over it goes in parts, so its whole body is not compressed ahead.
pub(crate) fn read(wal: &mut Wal, mut key: Key, max_lines: usize) -> Option<Prefetched> {
    let pack = match wal.pack(&key.dest, key.from, key.max_points, key.max_bytes) {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => return None,
        Err(e) => {
            log::debug!("prefetch: {e}; the next turn reads the pack itself");
            return None;
        }
    };
    // The destination's next head: its first batch after the pack before
    // (ids of other destinations may lie between; later commits only come
    // after it).
    key.from = pack.first().map_or(key.from, |b| b.id);
    let points: usize = pack.iter().map(|b| b.points).sum();
    let zipped = if key.gzip && points <= max_lines {
        match Zipped::of(&pack) {
            Ok(z) => Some(z),
            Err(e) => {
                log::debug!("prefetch: gzip: {e}");
                None
            }
        }
    } else {
        None
    };
    Some(Prefetched { key, pack, zipped })
}

/// A pack's whole request body, gzip-compressed before its turn: the
/// forwarder makes the next pack's while the server works on the current
/// one. Used only for the request it was made for: the whole of the very
/// batches it was made from (checked), made by the same [`whole_body`] that
/// `send` uses otherwise.
pub(crate) struct Zipped {
    /// The batches it holds, in order.
    ids: Vec<i64>,
    pub bytes: Vec<u8>,
}

/// Lines gathered before each write into the gzip stream of a body
/// compressed ahead: few calls into the compressor, and no second copy of
/// the whole pack in memory (64 KiB instead of up to `max_request_mb`).
const ZIP_CHUNK_BYTES: usize = 64 * 1024;

impl Zipped {
    /// `pack`'s [`whole_body`], compressed; built in chunks, never whole.
    pub(crate) fn of(pack: &[StoredBatch]) -> std::io::Result<Zipped> {
        use std::io::Write;
        let size = pack.iter().map(|b| b.payload.len()).sum();
        let mut enc = crate::deliver::upstream::gzip_writer(size);
        if let [one] = pack {
            enc.write_all(&one.payload)?;
        } else {
            let mut chunk = Vec::with_capacity(ZIP_CHUNK_BYTES.min(size) + 1);
            for b in pack {
                for l in lineproto::lines(&b.payload) {
                    chunk.extend_from_slice(l);
                    chunk.push(b'\n');
                    if chunk.len() >= ZIP_CHUNK_BYTES {
                        enc.write_all(&chunk)?;
                        chunk.clear();
                    }
                }
            }
            enc.write_all(&chunk)?;
        }
        Ok(Zipped {
            ids: pack.iter().map(|b| b.id).collect(),
            bytes: enc.finish()?,
        })
    }

    /// Whether it is `pack`'s body: the same batches (a batch's lines change
    /// only by expiry, which drops the body first).
    pub(crate) fn made_from(&self, pack: &[StoredBatch]) -> bool {
        self.ids.len() == pack.len() && self.ids.iter().zip(pack).all(|(id, b)| *id == b.id)
    }
}

/// What a pack sent whole in one request carries: a single batch's payload
/// as stored (no copy), or every batch's lines, each ending in a newline.
pub(crate) fn whole_body(pack: &[StoredBatch]) -> std::borrow::Cow<'_, [u8]> {
    match pack {
        [one] => std::borrow::Cow::Borrowed(&one.payload[..]),
        _ => {
            let mut body = Vec::with_capacity(pack.iter().map(|b| b.payload.len() + 1).sum());
            for b in pack {
                for l in lineproto::lines(&b.payload) {
                    body.extend_from_slice(l);
                    body.push(b'\n');
                }
            }
            std::borrow::Cow::Owned(body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(id: i64, payload: &[u8]) -> StoredBatch {
        StoredBatch {
            id,
            dest: Destination {
                db: "d".into(),
                rp: String::new(),
            },
            points: lineproto::lines(payload).count(),
            format: 0,
            attempts: 0,
            first_ts: 0,
            stored_bytes: payload.len(),
            payload: payload.to_vec(),
        }
    }

    fn gunzip(z: &[u8]) -> Vec<u8> {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .expect("a whole gzip stream");
        out
    }

    #[test]
    fn a_body_compressed_ahead_is_the_whole_body_across_chunk_boundaries() {
        // Lines of many lengths, blank lines and a payload without its last
        // newline; over 64 KiB in all, so the chunks split it several times.
        let mut packs = Vec::new();
        let mut id = 0;
        for n in [1usize, 2, 7] {
            let pack: Vec<StoredBatch> = (0..n)
                .map(|k| {
                    id += 1;
                    let mut p = Vec::new();
                    for i in 0..(3_000 / n) {
                        p.extend_from_slice(
                            format!("m,k={k} v={i}i {}", "x".repeat(i % 97)).as_bytes(),
                        );
                        p.extend_from_slice(if i % 11 == 0 { b"\n\n" } else { b"\n" });
                    }
                    if k % 2 == 1 {
                        p.pop();
                    }
                    batch(id, &p)
                })
                .collect();
            packs.push(pack);
        }
        for pack in &packs {
            let z = Zipped::of(pack).expect("gzip in memory");
            assert_eq!(gunzip(&z.bytes), whole_body(pack).to_vec());
            assert!(z.made_from(pack));
            assert!(!z.made_from(&pack[..pack.len() - 1]));
        }
        assert!(!Zipped::of(&packs[1]).unwrap().made_from(&packs[2][..2]));
    }
}
