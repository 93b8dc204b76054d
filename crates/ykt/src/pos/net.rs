//! The terminal's TCP connection to the front-end processor: connects, reconnects with
//! backoff, reports link up / down and the bytes received, writes the frames the core
//! sends. `set_enabled(false)` is the network cable pulled (the connection is dropped and
//! no new one is made) — also used while the terminal is powered off.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A read never returns more than this at once.
const READ_BUF: usize = 16 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Frames queued to the connection task at most; the core sends a few at a time.
const QUEUE: usize = 256;

#[derive(Debug)]
pub enum NetEvent {
    Up,
    Down,
    Bytes(Vec<u8>),
}

enum Cmd {
    Send(Vec<u8>),
    Enable(bool),
    /// Close the connection and connect again (the core found the byte stream unusable).
    Reconnect,
}

/// Handle on the connection task.
pub struct Net {
    tx: mpsc::Sender<Cmd>,
}

impl Net {
    /// Starts the connection task (enabled or not); events arrive on the returned receiver.
    pub fn spawn(addr: String, enabled: bool) -> (Net, mpsc::Receiver<NetEvent>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(addr, enabled, rx, ev_tx));
        (Net { tx }, ev_rx)
    }

    /// Queues a frame; dropped when the link is down (the core's timers handle the loss).
    pub fn send(&self, frame: Vec<u8>) {
        if self.tx.try_send(Cmd::Send(frame)).is_err() {
            // A virtual-clock jump of hours queues hundreds of heartbeats; the core's own
            // timeouts cover a dropped frame.
            tracing::debug!("connection queue full: frame dropped");
        }
    }

    pub fn reconnect(&self) {
        let _ = self.tx.try_send(Cmd::Reconnect);
    }

    pub async fn set_enabled(&self, on: bool) {
        let _ = self.tx.send(Cmd::Enable(on)).await;
    }
}

enum Ended {
    Closed,
    Disabled,
    Quit,
}

async fn run(
    addr: String,
    mut enabled: bool,
    mut rx: mpsc::Receiver<Cmd>,
    ev: mpsc::Sender<NetEvent>,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        if !enabled {
            match rx.recv().await {
                None => return,
                Some(Cmd::Enable(on)) => enabled = on,
                Some(Cmd::Send(_) | Cmd::Reconnect) => {}
            }
            continue;
        }
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)).await;
        match connect {
            Ok(Ok(stream)) => {
                backoff = BACKOFF_MIN;
                let _ = stream.set_nodelay(true);
                if ev.send(NetEvent::Up).await.is_err() {
                    return;
                }
                let ended = connection(stream, &mut rx, &ev).await;
                if ev.send(NetEvent::Down).await.is_err() {
                    return;
                }
                match ended {
                    Ended::Quit => return,
                    Ended::Disabled => enabled = false,
                    Ended::Closed => enabled = wait(&mut rx, &mut backoff).await.unwrap_or(false),
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "connect failed");
                enabled = wait(&mut rx, &mut backoff).await.unwrap_or(false);
            }
            Err(_) => {
                tracing::debug!(%addr, "connect timed out");
                enabled = wait(&mut rx, &mut backoff).await.unwrap_or(false);
            }
        }
        if rx.is_closed() {
            return;
        }
    }
}

/// Sleeps the backoff (doubling it), obeying commands meanwhile; `Some(enabled)` after.
async fn wait(rx: &mut mpsc::Receiver<Cmd>, backoff: &mut Duration) -> Option<bool> {
    let sleep = tokio::time::sleep(*backoff);
    tokio::pin!(sleep);
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
    loop {
        tokio::select! {
            () = &mut sleep => return Some(true),
            cmd = rx.recv() => match cmd {
                None => return None,
                Some(Cmd::Enable(false)) => return Some(false),
                Some(_) => {}
            },
        }
    }
}

async fn connection(
    mut stream: TcpStream,
    rx: &mut mpsc::Receiver<Cmd>,
    ev: &mpsc::Sender<NetEvent>,
) -> Ended {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        tokio::select! {
            n = stream.read(&mut buf) => match n {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(n) => {
                    if ev.send(NetEvent::Bytes(buf[..n].to_vec())).await.is_err() {
                        return Ended::Quit;
                    }
                }
            },
            cmd = rx.recv() => match cmd {
                None => return Ended::Quit,
                Some(Cmd::Enable(false)) => return Ended::Disabled,
                Some(Cmd::Enable(true)) => {}
                Some(Cmd::Reconnect) => return Ended::Closed,
                Some(Cmd::Send(frame)) => {
                    if stream.write_all(&frame).await.is_err() {
                        return Ended::Closed;
                    }
                }
            },
        }
    }
}
