//! SIGINT (Ctrl-C) and SIGTERM for every transport: the first finishes the work in flight
//! through the root of the stop tree (each transport then delivers what it computed), the
//! second quits at once with the shell's code for an interrupt.

use super::stop::Stop;
use anyhow::{Context, Result};

/// Install the handlers now (a signal that arrives before the first await is not lost),
/// then watch for them in a task. Must run inside the async runtime.
pub fn install(root: Stop, first: String) -> Result<()> {
    let mut signals = Signals::new()?;
    tokio::spawn(async move {
        signals.next().await;
        eprintln!("{first}");
        root.finish();
        signals.next().await;
        eprintln!("powhost: interrupted again, quitting");
        std::process::exit(130);
    });
    Ok(())
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn new() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn new() -> Result<Self> {
        Ok(Self)
    }

    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
