//! Headless Chromium driven over the W3C WebDriver protocol by Debian's `chromedriver`, for
//! the web console's browser tests (issue 14). A small client over `ureq` (already a
//! dependency): the protocol is a handful of JSON requests, so no WebDriver crate and its
//! async stack are compiled for the tests. Also: every page's HTML through `tidy`, the
//! browser's console log, screenshots.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    /// The console's address: `http://127.0.0.1:PORT`.
    pub site: String,
    pub downloads: PathBuf,
    /// Every page checked by tidy already (path without query).
    checked: std::collections::BTreeSet<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn send_json(agent: &ureq::Agent, url: &str, v: &Value) -> ureq::http::Response<ureq::Body> {
    agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(v.to_string())
        .unwrap()
}

fn read_json(r: &mut ureq::http::Response<ureq::Body>) -> Value {
    let text = r.body_mut().read_to_string().unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session against `site`.
    pub fn start(site: &str, downloads: &Path) -> Browser {
        assert!(
            Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists(),
            "the browser tests need Debian's chromium and chromium-driver (scripts/test installs them)"
        );
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let agent = agent();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut r) = agent.get(format!("{base}/status")).call()
                && read_json(&mut r)["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::fs::create_dir_all(downloads).unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--lang=zh-CN", "--no-first-run"],
                "prefs": {"download.default_directory": downloads.to_str().unwrap(),
                          "download.prompt_for_download": false},
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let mut r = send_json(&agent, &format!("{base}/session"), &caps);
        let v: Value = read_json(&mut r);
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            agent,
            site: site.trim_end_matches('/').to_owned(),
            downloads: downloads.to_owned(),
            checked: Default::default(),
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, b) => Ok(send_json(&self.agent, &url, &b.unwrap_or(json!({})))),
        }
        .unwrap();
        let v: Value = read_json(&mut r);
        v["value"].clone()
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self.cmd(method, path, body);
        assert!(v.get("error").is_none(), "WebDriver {method} {path}: {v}");
        v
    }

    /// Opens a console path (`/cards?q=1`).
    pub fn open(&mut self, path: &str) {
        self.ok(
            "POST",
            "/url",
            Some(json!({"url": format!("{}{path}", self.site)})),
        );
        self.after_load(None);
    }

    /// Opens a path the server is expected to refuse with `status`: the browser logs that
    /// refusal, and nothing else.
    pub fn open_refused(&mut self, path: &str, status: u16) {
        self.ok(
            "POST",
            "/url",
            Some(json!({"url": format!("{}{path}", self.site)})),
        );
        self.after_load(Some(status));
    }

    fn page_id(&self) -> Option<String> {
        self.find_opt("html")
    }

    /// The current path (and query).
    pub fn path(&self) -> String {
        let url = self.ok("GET", "/url", None);
        url.as_str()
            .unwrap()
            .trim_start_matches(&self.site)
            .to_owned()
    }

    fn find_opt(&self, css: &str) -> Option<String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        if std::env::var("YKT_WEBDRIVER_DEBUG").is_ok() {
            eprintln!("find {css}: {v}");
        }
        v[ELEMENT].as_str().map(str::to_owned)
    }

    fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(e) = self.find_opt(css) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}:\n{}",
                self.path(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn has(&self, css: &str) -> bool {
        self.find_opt(css).is_some()
    }

    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        self.ok("GET", &format!("/element/{e}/text"), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.ok("POST", &format!("/element/{e}/clear"), None);
        self.ok(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Puts a local file into an `<input type=file>`.
    pub fn attach(&self, css: &str, file: &Path) {
        let e = self.find(css);
        self.ok(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": file.to_str().unwrap()})),
        );
    }

    /// Chooses `<option value=value>` of the `<select>` found by `css`.
    pub fn choose(&self, css: &str, value: &str) {
        let e = self.find(&format!("{css} option[value=\"{value}\"]"));
        self.ok("POST", &format!("/element/{e}/click"), None);
    }

    /// Clicks and waits for the page it leads to.
    pub fn click(&mut self, css: &str) {
        let before = self.page_id();
        let e = self.find(css);
        self.ok("POST", &format!("/element/{e}/click"), None);
        self.wait_new_page(before);
    }

    /// Clicks and waits for the page, which the server is expected to answer with `status`.
    pub fn click_refused(&mut self, css: &str, status: u16) {
        let before = self.page_id();
        let e = self.find(css);
        self.ok("POST", &format!("/element/{e}/click"), None);
        self.wait_new_page_refused(before, Some(status));
    }

    /// Until the document is another than `before` (a click's navigation has happened).
    fn wait_new_page(&mut self, before: Option<String>) {
        self.wait_new_page_refused(before, None);
    }

    fn wait_new_page_refused(&mut self, before: Option<String>, refused: Option<u16>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.page_id() == before {
            assert!(Instant::now() < deadline, "the click led nowhere");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.after_load(refused);
    }

    /// Clicks something that opens no new page (a download link).
    pub fn click_in_place(&mut self, css: &str) {
        let e = self.find(css);
        self.ok("POST", &format!("/element/{e}/click"), None);
    }

    /// Clicks a button that asks for confirmation, and accepts.
    pub fn click_confirm(&mut self, css: &str) {
        let before = self.page_id();
        let e = self.find(css);
        self.ok("POST", &format!("/element/{e}/click"), None);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = self.cmd("GET", "/alert/text", None);
            if v.is_string() {
                break;
            }
            assert!(Instant::now() < deadline, "no confirmation asked");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.ok("POST", "/alert/accept", None);
        self.wait_new_page(before);
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    fn after_load(&mut self, refused: Option<u16>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.cmd(
                "POST",
                "/execute/sync",
                Some(json!({"script": "return document.readyState", "args": []})),
            );
            if state == "complete" {
                break;
            }
            assert!(Instant::now() < deadline, "page did not load: {state}");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.assert_no_console_errors(refused);
        let path = self.path();
        let bare = path.split('?').next().unwrap_or("").to_owned();
        if !self.checked.contains(&bare) {
            self.validate(&path);
            self.checked.insert(bare);
        }
    }

    /// The session cookie as the browser holds it (HttpOnly: only WebDriver sees it).
    pub fn cookie_header(&self) -> String {
        self.ok("GET", "/cookie", None)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c["name"].as_str().unwrap(),
                    c["value"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// GET of a console path with the browser's cookies, outside the browser: the raw HTML.
    pub fn fetch(&self, path: &str) -> (u16, String) {
        let mut r = self
            .agent
            .get(format!("{}{path}", self.site))
            .header("Cookie", self.cookie_header())
            .call()
            .unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// A form POST with the browser's cookies, outside the browser (forcing an action).
    pub fn force_post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let mut r = self
            .agent
            .post(format!("{}{path}", self.site))
            .header("Cookie", self.cookie_header())
            .send_form(form.iter().copied())
            .unwrap();
        (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// The page's HTML as the server sent it passes `tidy -q -e` with neither an error nor a
    /// warning.
    pub fn validate(&self, path: &str) {
        let (_, html) = self.fetch(path);
        let mut child = Command::new("tidy")
            // An empty <tbody> is valid HTML5; tidy would only "trim" it, a clean-up, not an error.
            .args([
                "-q",
                "-e",
                "--show-warnings",
                "yes",
                "-utf8",
                "--drop-empty-elements",
                "no",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tidy (Debian package tidy) is needed by the browser tests");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), html.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "tidy on {path}: {}\n{html}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The browser's console has logged nothing at warning level or above.
    pub fn assert_no_console_errors(&self, refused: Option<u16>) {
        let expected = refused.map(|s| format!("status of {s} "));
        let logs = self.cmd("POST", "/se/log", Some(json!({"type": "browser"})));
        let bad: Vec<&Value> = logs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| matches!(l["level"].as_str(), Some("SEVERE" | "WARNING")))
            .filter(|l| {
                let m = l["message"].as_str().unwrap_or("");
                !expected.as_ref().is_some_and(|e| m.contains(e.as_str()))
            })
            .collect();
        assert!(bad.is_empty(), "browser console: {bad:?}");
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, file: &Path) {
        let b64 = self.ok("GET", "/screenshot", None);
        std::fs::write(file, base64(b64.as_str().unwrap())).unwrap();
    }

    /// Waits for a downloaded file whose name starts with `prefix`; returns its bytes.
    pub fn downloaded(&self, prefix: &str) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for e in std::fs::read_dir(&self.downloads).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(prefix) && !name.ends_with(".crdownload") {
                    return std::fs::read(e.path()).unwrap();
                }
            }
            assert!(Instant::now() < deadline, "nothing downloaded as {prefix}*");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .agent
            .delete(format!("{}/session/{}", self.base, self.session))
            .call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (the screenshot's encoding).
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|b| *b != b'=' && !b.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(val(*c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
