//! `ykt pos --headless`: the terminal driven by JSON lines on stdin, reporting JSON lines on
//! stdout (`docs/pos-script.md`). Virtual clock by default: time moves only on `advance`,
//! so scripts are deterministic; the host is a real process, so `wait` waits (bounded, in
//! real time) for its answers. With `--real-time` the core's timers fire as they fall due,
//! also while a command waits.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDateTime;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use ykt_proto::FrameDecoder;
use ykt_terminal::{Input, Key, Output};

use super::driver::Driver;
use super::json::{self, Command, WaitSpec};
use super::net::{Net, NetEvent};

/// A script line longer than this is refused.
const MAX_LINE: usize = 64 * 1024;
/// Output lines kept for `wait` to search; older ones are dropped.
const MAX_UNCONSUMED: usize = 10_000;
pub const DEFAULT_WAIT_MS: u64 = 5_000;
pub const MAX_WAIT_MS: u64 = 120_000;
/// How long power-off or a cable pull waits for the connection to close.
const LINK_CLOSE_MS: u64 = 5_000;

pub struct Headless {
    driver: Driver,
    net: Net,
    events: mpsc::Receiver<NetEvent>,
    decoder: FrameDecoder,
    /// Output lines `wait` has not consumed yet, oldest first.
    unconsumed: VecDeque<Value>,
    /// The network cable is plugged in.
    cable: bool,
}

/// Reads stdin lines on a thread (stdin has no portable async read), each bounded.
fn stdin_lines() -> mpsc::Receiver<Result<String, String>> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut line = Vec::new();
            let mut too_long = false;
            loop {
                let buf = match input.fill_buf() {
                    Ok(b) => b,
                    Err(_) => return,
                };
                if buf.is_empty() {
                    if !line.is_empty() {
                        let _ = tx.blocking_send(Ok(String::from_utf8_lossy(&line).into_owned()));
                    }
                    return;
                }
                let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (&buf[..i], Some(i + 1)),
                    None => (buf, None),
                };
                if line.len() + chunk.len() > MAX_LINE {
                    too_long = true;
                } else {
                    line.extend_from_slice(chunk);
                }
                let used = done.unwrap_or(buf.len());
                input.consume(used);
                if done.is_some() {
                    break;
                }
            }
            let item = if too_long {
                Err(format!("line longer than {MAX_LINE} bytes"))
            } else {
                String::from_utf8(line).map_err(|_| "line is not UTF-8".to_owned())
            };
            if tx.blocking_send(item).is_err() {
                return;
            }
        }
    });
    rx
}

impl Headless {
    pub async fn run(driver: Driver, power_on: bool) -> anyhow::Result<()> {
        let (net, events) = Net::spawn(driver.host().to_owned(), false);
        let mut h = Headless {
            driver,
            net,
            events,
            decoder: FrameDecoder::new(ykt_proto::MAX_FRAME_LEN),
            unconsumed: VecDeque::new(),
            cable: true,
        };
        if power_on {
            h.power_on().await?;
        }
        let mut lines = stdin_lines();
        loop {
            let timer = h.real_timer();
            tokio::select! {
                line = lines.recv() => match line {
                    None => break,
                    Some(Err(e)) => h.emit(json!({"reply": null, "error": e})),
                    Some(Ok(l)) if l.trim().is_empty() => {}
                    Some(Ok(l)) => {
                        if !h.command(&l).await? {
                            break;
                        }
                    }
                },
                ev = h.events.recv() => match ev {
                    Some(ev) => h.apply(ev)?,
                    None => anyhow::bail!("the connection task ended"),
                },
                () = sleep_until(timer) => h.fire_timer()?,
            }
        }
        Ok(())
    }

    /// The core's timer fell due (real time).
    fn fire_timer(&mut self) -> anyhow::Result<()> {
        let out = self.driver.tick_if_due()?;
        self.route(out);
        Ok(())
    }

    /// In real-time mode, when the core's timer falls due.
    fn real_timer(&self) -> Option<Instant> {
        if self.driver.clock.is_virtual() {
            return None;
        }
        let t = self.driver.next_timer()?;
        let wait = t.saturating_sub(self.driver.clock.now_ms());
        Some(Instant::now() + Duration::from_millis(wait))
    }

    fn emit(&mut self, line: Value) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        if line.get("reply").is_none() {
            if self.unconsumed.len() >= MAX_UNCONSUMED {
                self.unconsumed.pop_front();
            }
            self.unconsumed.push_back(line);
        }
    }

    fn route(&mut self, out: Vec<Output>) {
        for o in out {
            match &o {
                Output::Send(bytes) if self.driver.view.link => self.net.send(bytes.clone()),
                Output::Reconnect => self.net.reconnect(),
                _ => {}
            }
            if let Some(line) = json::output(&o) {
                self.emit(line);
            }
        }
    }

    fn apply(&mut self, ev: NetEvent) -> anyhow::Result<()> {
        match ev {
            NetEvent::Up => {
                self.decoder = FrameDecoder::new(ykt_proto::MAX_FRAME_LEN);
                self.emit(json!({"link": "up"}));
                let out = self.driver.feed(Input::LinkUp)?;
                self.route(out);
            }
            NetEvent::Down => {
                self.emit(json!({"link": "down"}));
                let out = self.driver.feed(Input::LinkDown)?;
                self.route(out);
            }
            NetEvent::Bytes(bytes) => {
                let mut rest: &[u8] = &bytes;
                let mut types = Vec::new();
                while !rest.is_empty() {
                    match self.decoder.decode(&mut rest) {
                        Ok(Some(frame)) => types.push(json::frame_type(frame)),
                        Ok(None) => break,
                        Err(e) => {
                            types.push(format!("malformed: {e}"));
                            self.decoder = FrameDecoder::new(ykt_proto::MAX_FRAME_LEN);
                            break;
                        }
                    }
                }
                for t in types {
                    self.emit(json!({"received": t}));
                }
                let out = self.driver.feed(Input::FromHost(bytes))?;
                self.route(out);
            }
        }
        Ok(())
    }

    async fn power_on(&mut self) -> anyhow::Result<()> {
        let out = self.driver.power_on()?;
        self.emit(json!({"power": "on"}));
        self.route(out);
        if self.cable {
            self.net.set_enabled(true).await;
        }
        Ok(())
    }

    /// Disables the connection and waits (bounded) until it is down.
    async fn drop_link(&mut self) -> anyhow::Result<()> {
        self.net.set_enabled(false).await;
        let deadline = Instant::now() + Duration::from_millis(LINK_CLOSE_MS);
        while self.driver.view.link && self.step_until(deadline).await? {}
        Ok(())
    }

    /// While a command waits: handles the next network event or, in real time, the core's
    /// timer as it falls due (timers fire by themselves, `docs/pos-script.md`). `false`: the
    /// deadline came first.
    async fn step_until(&mut self, deadline: Instant) -> anyhow::Result<bool> {
        let timer = self.real_timer();
        tokio::select! {
            ev = self.events.recv() => match ev {
                Some(ev) => self.apply(ev)?,
                None => anyhow::bail!("the connection task ended"),
            },
            () = sleep_until(timer) => self.fire_timer()?,
            () = tokio::time::sleep_until(deadline) => return Ok(false),
        }
        Ok(true)
    }

    /// Runs one script line; `false` to stop.
    async fn command(&mut self, line: &str) -> anyhow::Result<bool> {
        let cmd: Command = match serde_json::from_str(line) {
            Ok(c) => c,
            Err(e) => {
                self.emit(json!({"reply": null, "error": format!("bad command: {e}")}));
                return Ok(true);
            }
        };
        let name = cmd.name();
        let quit = matches!(cmd, Command::Quit);
        let reply = match self.execute(cmd).await {
            Ok(Some(extra)) => {
                let mut r = json!({"reply": name, "ok": true});
                if let (Some(r), Value::Object(extra)) = (r.as_object_mut(), extra) {
                    r.extend(extra);
                }
                r
            }
            Ok(None) => json!({"reply": name, "ok": true}),
            Err(e) => json!({"reply": name, "error": format!("{e:#}")}),
        };
        self.emit(reply);
        Ok(!quit)
    }

    fn keys(&mut self, keys: Vec<Key>) -> anyhow::Result<()> {
        for k in keys {
            let out = self.driver.feed(Input::Key(k))?;
            self.route(out);
        }
        Ok(())
    }

    async fn execute(&mut self, cmd: Command) -> anyhow::Result<Option<Value>> {
        match cmd {
            Command::PowerOn => self.power_on().await?,
            Command::PowerOff => {
                self.driver.power_off();
                self.emit(json!({"power": "off"}));
                self.drop_link().await?;
            }
            Command::Key { key } => {
                let k = json::parse_key(&key).map_err(anyhow::Error::msg)?;
                self.keys(vec![k])?;
            }
            Command::Type { digits } => {
                let keys = json::digits(&digits).map_err(anyhow::Error::msg)?;
                self.keys(keys)?;
            }
            Command::Amount { fen } => {
                let mut keys = json::digits(&fen.to_string()).map_err(anyhow::Error::msg)?;
                keys.push(Key::Enter);
                self.keys(keys)?;
            }
            Command::Pin { digits } => {
                let mut keys = json::digits(&digits).map_err(anyhow::Error::msg)?;
                keys.push(Key::Enter);
                self.keys(keys)?;
            }
            Command::Authorise { file, pin } => {
                let mut keys = json::digits(&pin).map_err(anyhow::Error::msg)?;
                keys.push(Key::Enter);
                let out = self.driver.place(&PathBuf::from(&file), None)?;
                self.emit(json!({"card": "placed", "file": file}));
                self.route(out);
                self.keys(keys)?;
                let out = self.driver.remove()?;
                self.emit(json!({"card": "removed"}));
                self.route(out);
            }
            Command::Place { file, fault } => {
                let fault = fault
                    .as_ref()
                    .map(json::parse_fault)
                    .transpose()
                    .map_err(anyhow::Error::msg)?;
                let path = PathBuf::from(&file);
                let out = self.driver.place(&path, fault)?;
                self.emit(json!({"card": "placed", "file": file}));
                self.route(out);
                if !self.driver.card_in_field() {
                    self.emit(json!({"card": "left_field"}));
                }
            }
            Command::Remove => {
                let out = self.driver.remove()?;
                self.emit(json!({"card": "removed"}));
                self.route(out);
            }
            Command::Advance { ms } => {
                anyhow::ensure!(
                    self.driver.clock.is_virtual(),
                    "advance needs the virtual clock"
                );
                anyhow::ensure!(
                    ms <= super::clock::MAX_ADVANCE_MS,
                    "advance: at most a year"
                );
                let out = self.driver.advance(ms)?;
                self.route(out);
            }
            Command::SetClock { time } => {
                anyhow::ensure!(
                    self.driver.clock.is_virtual(),
                    "set_clock needs the virtual clock"
                );
                let t = NaiveDateTime::parse_from_str(&time, "%Y-%m-%dT%H:%M:%S")
                    .map_err(|e| anyhow::anyhow!("time {time:?}: {e} (YYYY-MM-DDTHH:MM:SS)"))?;
                self.driver.clock.set_rtc(t);
            }
            Command::Net { up } => {
                self.cable = up;
                if up {
                    if self.driver.view.powered {
                        self.net.set_enabled(true).await;
                    }
                } else {
                    self.drop_link().await?;
                }
            }
            Command::Status => return Ok(Some(json!({"status": self.status()}))),
            Command::Wait(w) => return self.wait(&w).await.map(Some),
            Command::Quit => {}
        }
        Ok(None)
    }

    fn status(&self) -> Value {
        let v = &self.driver.view;
        let term = self.driver.terminal();
        json!({
            "powered": v.powered,
            "link": v.link,
            "connected": term.is_some_and(|t| t.is_connected()),
            "online": v.online,
            "mode": v.mode.map(|m| json::snake(&format!("{m:?}"))),
            "role": json::snake(&format!("{:?}", self.driver.role())),
            "pending": v.pending,
            "in_flight": term.and_then(|t| t.in_flight()),
            "next_serial": term.map(|t| t.storage().journal.next_serial()),
            "screen": v.screen,
            "keyed": v.keyed,
            "card": v.card.as_ref().map(|p| p.display().to_string()),
            "card_in_field": self.driver.card_in_field(),
            "card_ops": self.driver.card_ops(),
            "clock": self.driver.wall().format("%Y-%m-%dT%H:%M:%S").to_string(),
            "now_ms": self.driver.clock.now_ms(),
            "cable": self.cable,
        })
    }

    /// Whether the state or an unconsumed line satisfies `w`; consumes lines up to a match.
    fn satisfied(&mut self, w: &WaitSpec) -> anyhow::Result<Option<Value>> {
        let v = &self.driver.view;
        let term = self.driver.terminal();
        match w.what.as_str() {
            "link" => {
                let up = w.up.unwrap_or(true);
                return Ok((v.link == up).then(|| json!({"link": up})));
            }
            "pending" => {
                let n = w.count.unwrap_or(0);
                return Ok((v.pending == n).then(|| json!({"pending": n})));
            }
            "idle" => {
                let idle = v.pending == 0 && term.is_some_and(|t| t.in_flight().is_none());
                return Ok(idle.then(|| json!({"idle": true})));
            }
            "screen" | "event" | "line" => {}
            other => {
                anyhow::bail!("wait for {other:?}: screen, event, line, link, pending or idle")
            }
        }
        let hit = |line: &Value| match w.what.as_str() {
            "screen" => {
                let text = w.text.as_deref().unwrap_or("");
                line.get("screen")
                    .and_then(Value::as_array)
                    .is_some_and(|ls| {
                        ls.iter()
                            .any(|l| l.as_str().is_some_and(|l| l.contains(text)))
                    })
            }
            "event" => {
                line.get("event").is_some()
                    && w.pattern.as_ref().is_none_or(|p| json::matches(p, line))
            }
            _ => w.pattern.as_ref().is_some_and(|p| json::matches(p, line)),
        };
        if w.what == "screen" && w.text.is_none() {
            anyhow::bail!("wait for screen needs \"text\"");
        }
        if w.what == "line" && w.pattern.is_none() {
            anyhow::bail!("wait for line needs \"match\"");
        }
        let Some(i) = self.unconsumed.iter().position(hit) else {
            return Ok(None);
        };
        let found = self.unconsumed.drain(..=i).next_back();
        Ok(found.map(|l| json!({"matched": l})))
    }

    async fn wait(&mut self, w: &WaitSpec) -> anyhow::Result<Value> {
        let ms = w.timeout_ms.unwrap_or(DEFAULT_WAIT_MS).min(MAX_WAIT_MS);
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            if let Some(found) = self.satisfied(w)? {
                return Ok(found);
            }
            if !self.step_until(deadline).await? {
                anyhow::bail!(
                    "timed out after {ms} ms waiting for {}; screen: {}",
                    w.what,
                    self.driver.view.screen.join(" / ")
                );
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
