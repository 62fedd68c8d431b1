//! SIGTERM and SIGINT become the agent's shutdown signal.
//!
//! A small thread waits on the signals (signal-hook) and closes a channel the
//! executor awaits; a second signal while stopping exits at once, for an
//! operator who does not want to wait for the bounded stop.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

pub fn on_stop_signal() -> std::io::Result<smol::channel::Receiver<()>> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let (tx, rx) = smol::channel::bounded(1);
    std::thread::Builder::new()
        .name("hissrv-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
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
    Ok(rx)
}
