//! `ykt pos` for a cashier: the LCD text exactly as the core gives it, the amount being
//! keyed, work mode, connection, pending records, the card on the reader and a key legend.
//! Real time; the keyboard is the POS keypad; `p` / `r` put a card image on the reader and
//! take it off.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ratatui::Frame;
use ratatui::crossterm::event::{
    self, Event as TermEvent, KeyCode, KeyEvent, KeyEventKind, KeyModifiers,
};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Wrap};
use tokio::sync::mpsc;
use tokio::time::Instant;
use ykt_terminal::core::texts;
use ykt_terminal::{Input, Key, Output};

use super::driver::{Driver, View};
use super::net::{Net, NetEvent};

/// At most this many card images are offered from `--cards`.
const MAX_CARDS: usize = 1_000;

pub const LEGEND: &str = "0-9 金额/密码  Enter 确认  Esc 取消  F1/s 签到  F2/t 统计  \
    F3/v 冲正  F4/m 模式  F5/z 清脱机时间  p 放卡(下一张)  r 取卡  q 退出";

/// What a key on the PC keyboard does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Pos(Key),
    PlaceNext,
    Remove,
    Quit,
    Nothing,
}

pub fn action(k: KeyEvent) -> Action {
    if k.kind == KeyEventKind::Release {
        return Action::Nothing;
    }
    if k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char('c') {
        return Action::Quit;
    }
    match k.code {
        KeyCode::Char(c @ '0'..='9') => Action::Pos(Key::Digit(c as u8 - b'0')),
        KeyCode::Enter => Action::Pos(Key::Enter),
        KeyCode::Esc | KeyCode::Backspace => Action::Pos(Key::Cancel),
        KeyCode::F(1) | KeyCode::Char('s') => Action::Pos(Key::SignIn),
        KeyCode::F(2) | KeyCode::Char('t') => Action::Pos(Key::Stats),
        KeyCode::F(3) | KeyCode::Char('v') => Action::Pos(Key::Reversal),
        KeyCode::F(4) | KeyCode::Char('m') => Action::Pos(Key::Mode),
        KeyCode::F(5) | KeyCode::Char('z') => Action::Pos(Key::ResetOffline),
        KeyCode::Char('p') => Action::PlaceNext,
        KeyCode::Char('r') => Action::Remove,
        KeyCode::Char('q') => Action::Quit,
        _ => Action::Nothing,
    }
}

/// The status lines under the LCD.
pub fn status_lines(v: &View, device: &str, message: &str) -> Vec<String> {
    let mode = v.mode.map_or("—", texts::mode);
    let link = match (v.link, v.online) {
        (true, true) => "已联机",
        (true, false) => "已连接，未联机",
        (false, _) => "未连接",
    };
    let card = v
        .card
        .as_ref()
        .and_then(|p| p.file_name())
        .map_or_else(|| "无".to_owned(), |n| n.to_string_lossy().into_owned());
    let beep = if v.beeping { "  ♪ 连续蜂鸣" } else { "" };
    vec![
        format!("终端 {device}   模式：{mode}   网络：{link}"),
        format!("输入：{}", if v.keyed.is_empty() { "—" } else { &v.keyed }),
        format!("未上传流水：{}笔   读卡器上的卡：{card}{beep}", v.pending),
        message.to_owned(),
    ]
}

pub fn render(f: &mut Frame, v: &View, device: &str, message: &str) {
    let [lcd, status, legend] = Layout::vertical([
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Min(3),
    ])
    .areas(f.area());
    let lcd_text: Vec<Line> = v.screen.iter().map(|l| Line::from(l.as_str())).collect();
    f.render_widget(
        Paragraph::new(lcd_text)
            .style(
                Style::default()
                    .fg(Color::Green)
                    .add_modifier(Modifier::BOLD),
            )
            .block(Block::bordered().title(" 显示屏 ")),
        lcd,
    );
    let lines: Vec<Line> = status_lines(v, device, message)
        .into_iter()
        .map(Line::from)
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" 状态 ")),
        status,
    );
    f.render_widget(
        Paragraph::new(LEGEND)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" 按键 ")),
        legend,
    );
}

/// The card images of `dir`, sorted, at most [`MAX_CARDS`].
pub fn card_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("mf1" | "cpu")))
        .take(MAX_CARDS)
        .collect();
    files.sort();
    files
}

fn keyboard() -> mpsc::Receiver<KeyEvent> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        loop {
            match event::read() {
                Ok(TermEvent::Key(k)) => {
                    if tx.blocking_send(k).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

struct App {
    driver: Driver,
    net: Net,
    cards: Vec<PathBuf>,
    next_card: usize,
    message: String,
    device: String,
}

impl App {
    fn route(&mut self, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send(bytes) if self.driver.view.link => self.net.send(bytes),
                Output::Reconnect => self.net.reconnect(),
                _ => {}
            }
        }
    }

    fn feed(&mut self, input: Input) -> anyhow::Result<()> {
        let out = self.driver.feed(input)?;
        self.route(out);
        Ok(())
    }

    fn place_next(&mut self) -> anyhow::Result<()> {
        if self.cards.is_empty() {
            self.message = "没有卡片文件 (--cards DIR)".into();
            return Ok(());
        }
        let path = self.cards[self.next_card % self.cards.len()].clone();
        self.next_card = (self.next_card + 1) % self.cards.len();
        match self.driver.place(&path, None) {
            Ok(out) => {
                self.message.clear();
                self.route(out);
            }
            Err(e) => self.message = format!("{e:#}"),
        }
        Ok(())
    }
}

pub async fn run(mut driver: Driver, cards: Option<PathBuf>) -> anyhow::Result<()> {
    let out = driver.power_on()?;
    let (net, mut events) = Net::spawn(driver.host().to_owned(), true);
    let cards = cards.as_deref().map(card_files).unwrap_or_default();
    let mut app = App {
        device: driver.device_id(),
        driver,
        net,
        cards,
        next_card: 0,
        message: String::new(),
    };
    app.route(out);
    let mut terminal = ratatui::init();
    let mut keys = keyboard();
    let result = loop {
        let v = app.driver.view.clone();
        if let Err(e) = terminal.draw(|f| render(f, &v, &app.device, &app.message)) {
            break Err(e.into());
        }
        let wait = app.driver.next_timer().map_or(Duration::from_secs(1), |t| {
            Duration::from_millis(t.saturating_sub(app.driver.clock.now_ms()))
        });
        let step: anyhow::Result<bool> = tokio::select! {
            k = keys.recv() => match k.map(action) {
                None | Some(Action::Quit) => Ok(false),
                Some(Action::Pos(key)) => app.feed(Input::Key(key)).map(|()| true),
                Some(Action::PlaceNext) => app.place_next().map(|()| true),
                Some(Action::Remove) => {
                    let out = app.driver.remove();
                    out.map(|o| { app.route(o); true })
                }
                Some(Action::Nothing) => Ok(true),
            },
            ev = events.recv() => match ev {
                Some(NetEvent::Up) => app.feed(Input::LinkUp).map(|()| true),
                Some(NetEvent::Down) => app.feed(Input::LinkDown).map(|()| true),
                Some(NetEvent::Bytes(b)) => app.feed(Input::FromHost(b)).map(|()| true),
                None => Err(anyhow::anyhow!("the connection task ended")),
            },
            () = tokio::time::sleep_until(Instant::now() + wait) => {
                let out = app.driver.tick_if_due();
                out.map(|o| { app.route(o); true })
            }
        };
        match step {
            Ok(true) => {}
            Ok(false) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    ratatui::restore();
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;
    use ykt_proto::WorkMode;

    fn text(t: &Terminal<TestBackend>) -> String {
        let buf = t.backend().buffer();
        let mut s = String::new();
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                s.push_str(buf[(x, y)].symbol());
            }
            s.push('\n');
        }
        s.replace(' ', "")
    }

    // R-P5.1, R-P5.6: the LCD shows the core's text exactly, with the pending indicator.
    #[test]
    fn renders_the_lcd_text_and_the_status() {
        let v = View {
            screen: vec!["签到成功".into(), "未上传流水：2笔".into()],
            link: true,
            online: true,
            mode: Some(WorkMode::Auto),
            pending: 2,
            keyed: "1250".into(),
            card: Some(PathBuf::from("/d/cards/3.mf1")),
            powered: true,
            beeping: true,
            ..View::default()
        };
        let mut t = Terminal::new(TestBackend::new(100, 20)).unwrap();
        t.draw(|f| render(f, &v, "10000001", "")).unwrap();
        let s = text(&t);
        for want in [
            "签到成功",
            "未上传流水：2笔",
            "模式：自动联机",
            "网络：已联机",
            "输入：1250",
            "读卡器上的卡：3.mf1",
            "连续蜂鸣",
            "Enter确认",
            "Esc取消",
        ] {
            assert!(s.contains(want), "{want} missing in\n{s}");
        }
    }

    #[test]
    fn keyboard_maps_to_the_keypad() {
        let k = |c| KeyEvent::new(c, KeyModifiers::NONE);
        assert_eq!(action(k(KeyCode::Char('7'))), Action::Pos(Key::Digit(7)));
        assert_eq!(action(k(KeyCode::Enter)), Action::Pos(Key::Enter));
        assert_eq!(action(k(KeyCode::Esc)), Action::Pos(Key::Cancel));
        assert_eq!(action(k(KeyCode::F(1))), Action::Pos(Key::SignIn));
        assert_eq!(action(k(KeyCode::F(2))), Action::Pos(Key::Stats));
        assert_eq!(action(k(KeyCode::F(3))), Action::Pos(Key::Reversal));
        assert_eq!(action(k(KeyCode::F(4))), Action::Pos(Key::Mode));
        assert_eq!(action(k(KeyCode::Char('p'))), Action::PlaceNext);
        assert_eq!(action(k(KeyCode::Char('r'))), Action::Remove);
        assert_eq!(action(k(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(
            action(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Action::Quit
        );
        assert_eq!(action(k(KeyCode::Char('x'))), Action::Nothing);
    }

    #[test]
    fn card_files_lists_only_card_images_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["2.mf1", "1.mf1", "9.cpu", "notes.txt"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let names: Vec<String> = card_files(dir.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["1.mf1", "2.mf1", "9.cpu"]);
    }
}
