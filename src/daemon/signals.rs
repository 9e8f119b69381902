//! Signals become events in one place (vector's `signal.rs`): SIGHUP is a reload, SIGTERM and
//! SIGINT a terminate. `run` and `demo` both take their stop from here.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// What the outside world asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGHUP: re-read the config and reconcile every target now.
    Reload,
    /// SIGTERM or SIGINT: stop taking work, let in-flight rollouts end. A second one exits at once.
    Terminate,
}

/// The process's three signals, read without a task of their own.
struct Os {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Os {
    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Reload,
            _ = self.term.recv() => Signal::Terminate,
            _ = self.int.recv() => Signal::Terminate,
        }
    }
}

/// Where the daemon's signals come from: the OS, a channel (tests, the demo's story), or both.
#[derive(Default)]
pub struct Signals {
    os: Option<Os>,
    channel: Option<mpsc::Receiver<Signal>>,
}

impl From<mpsc::Receiver<Signal>> for Signals {
    fn from(channel: mpsc::Receiver<Signal>) -> Self {
        Signals {
            os: None,
            channel: Some(channel),
        }
    }
}

impl Signals {
    /// SIGHUP, SIGTERM and SIGINT. Installing the handlers fails only without a signal driver.
    pub fn os() -> std::io::Result<Signals> {
        Ok(Signals {
            os: Some(Os {
                hup: signal(SignalKind::hangup())?,
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            }),
            channel: None,
        })
    }

    /// The OS's signals and `channel`'s, whichever comes first.
    pub fn with_channel(mut self, channel: mpsc::Receiver<Signal>) -> Signals {
        self.channel = Some(channel);
        self
    }

    /// The next signal; `None` once no source can send one any more (a closed channel and no
    /// OS handlers).
    pub async fn recv(&mut self) -> Option<Signal> {
        let Signals { os, channel } = self;
        let from_channel = async {
            match channel {
                Some(c) => c.recv().await,
                None => None,
            }
        };
        match os {
            None => from_channel.await,
            Some(os) => tokio::select! {
                s = os.recv() => Some(s),
                Some(s) = from_channel => Some(s),
            },
        }
    }
}

/// Turns SIGHUP, SIGTERM and SIGINT into `Signal`s.
pub fn os_signals() -> std::io::Result<Signals> {
    Signals::os()
}

/// Waits for SIGTERM or SIGINT; returns which. Without signal handlers it waits forever
/// (Ctrl-C then still ends the process the default way).
pub async fn wait_for_terminate() -> &'static str {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return "none";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_channel_source_ends_when_its_senders_are_gone() {
        let (tx, rx) = mpsc::channel(2);
        let mut s = Signals::from(rx);
        tx.send(Signal::Reload).await.expect("send");
        assert_eq!(s.recv().await, Some(Signal::Reload));
        drop(tx);
        assert_eq!(s.recv().await, None);
    }

    #[tokio::test]
    async fn os_signals_arrive_as_events() {
        let mut s = Signals::os().expect("handlers");
        let pid = std::process::id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        assert_eq!(s.recv().await, Some(Signal::Reload));
    }
}
