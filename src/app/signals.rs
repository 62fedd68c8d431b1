//! SIGTERM and SIGINT become the agent's shutdown signal; SIGHUP asks for a
//! config reload.
//!
//! A small thread waits on the signals (signal-hook) and closes a channel the
//! executor awaits; a second stop signal while stopping exits at once, for an
//! operator who does not want to wait for the bounded stop.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use smol::channel::Receiver;

/// The stop channel (closed on SIGTERM/SIGINT) and the reload channel (one
/// message per SIGHUP; several before it is read count as one).
pub fn install() -> std::io::Result<(Receiver<()>, Receiver<()>)> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    let (tx, rx) = smol::channel::bounded(1);
    let (hup_tx, hup_rx) = smol::channel::bounded(1);
    std::thread::Builder::new()
        .name("hissrv-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                if sig == SIGHUP {
                    let _ = hup_tx.try_send(());
                    continue;
                }
                seen += 1;
                if seen == 1 {
                    log::info!("signal {sig}: stopping");
                    tx.close();
                } else {
                    log::warn!("second signal {sig}: exiting now");
                    std::process::exit(130);
                }
            }
        })?;
    Ok((rx, hup_rx))
}
