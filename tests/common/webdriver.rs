//! A WebDriver client for the console's tests, just big enough for them: Debian's
//! `chromium` driven by `chromedriver` over the W3C WebDriver HTTP protocol, with `ureq`
//! (already a dependency) and nothing else. Every call blocks: run them off the thread
//! whose actors serve the node (`tokio::task::spawn_blocking`).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// The W3C name of an element reference in a WebDriver answer.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How often a [`Browser::wait`] looks, and how many times at most.
const WAIT_STEP: Duration = Duration::from_millis(100);
const WAIT_TRIES: u32 = 100;

/// A headless chromium, through its chromedriver.
pub struct Browser {
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    agent: ureq::Agent,
    /// chromedriver, killed on drop (it takes chromium with it).
    driver: Mutex<Child>,
    /// chromium's fresh profile.
    _profile: tempfile::TempDir,
}

/// A WebDriver command that failed: its error and message.
#[derive(Debug)]
pub struct Failed(pub String);

impl Browser {
    /// Starts chromedriver on `port` and a headless chromium session.
    pub fn start(port: u16) -> Browser {
        for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: scripts/test installs it (apt-get install chromium chromium-driver)"
            );
        }
        let driver = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..WAIT_TRIES {
            if let Ok(mut r) = agent.get(format!("{base}/status")).call() {
                let v: Value =
                    serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default())
                        .unwrap_or(Value::Null);
                if v["value"]["ready"] == true {
                    ready = true;
                    break;
                }
            }
            std::thread::sleep(WAIT_STEP);
        }
        assert!(ready, "chromedriver never became ready on port {port}");
        let profile = tempfile::tempdir().expect("profile folder");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let mut browser = Browser {
            session: base.clone(),
            agent,
            driver: Mutex::new(driver),
            _profile: profile,
        };
        let made = browser
            .call("POST", "/session", Some(caps))
            .unwrap_or_else(|e| panic!("no chromium session: {e:?}"));
        let id = made["sessionId"].as_str().expect("a session id").to_owned();
        browser.session = format!("{base}/session/{id}");
        browser
    }

    /// One command: `path` under the session (or the driver, before there is one).
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Failed> {
        let url = format!("{}{path}", self.session);
        let mut resp = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(json!({})).to_string()),
        }
        .map_err(|e| Failed(format!("{method} {path}: {e}")))?;
        let ok = resp.status().is_success();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(Failed(format!(
                "{method} {path}: {} {}",
                v["value"]["error"], v["value"]["message"]
            )))
        }
    }

    fn must(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, path, body)
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    pub fn goto(&self, url: &str) {
        self.must("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.must("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn title(&self) -> String {
        self.must("GET", "/title", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The first element matching `css`, if any.
    pub fn find(&self, css: &str) -> Option<String> {
        self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(str::to_owned))
    }

    /// The element matching `css`, waited for.
    pub fn element(&self, css: &str) -> String {
        self.wait(&format!("an element {css}"), |b| b.find(css))
    }

    pub fn click(&self, css: &str) {
        let e = self.element(css);
        self.must("POST", &format!("/element/{e}/click"), None);
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css);
        self.must("POST", &format!("/element/{e}/clear"), None);
        self.must(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Picks the `<option>` with text `option` of the select `css` (and fires its input event).
    pub fn select(&self, css: &str, option: &str) {
        self.script(
            "const s = document.querySelector(arguments[0]); s.value = arguments[1]; \
             s.dispatchEvent(new Event('input'));",
            json!([css, option]),
        );
    }

    /// The text an element shows (`""` when there is none).
    pub fn text(&self, css: &str) -> String {
        match self.find(css) {
            Some(e) => self
                .call("GET", &format!("/element/{e}/text"), None)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            None => String::new(),
        }
    }

    /// Runs `script` (a function body) with `args`; answers what it returns.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.must(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Runs `script`, which calls `arguments[arguments.length - 1]` with its answer.
    pub fn script_async(&self, script: &str, args: Value) -> Value {
        self.must(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The text of an open `confirm()` or `alert()`, accepted; waited for.
    pub fn accept_dialog(&self) -> String {
        let text = self.wait("a dialog", |b| {
            b.call("GET", "/alert/text", None)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
        });
        self.must("POST", "/alert/accept", None);
        text
    }

    /// Waits until `probe` answers something: at most [`WAIT_TRIES`] looks, [`WAIT_STEP`]
    /// apart; panics naming `what`, with the page's text, when it never does.
    pub fn wait<T>(&self, what: &str, probe: impl Fn(&Browser) -> Option<T>) -> T {
        for _ in 0..WAIT_TRIES {
            if let Some(v) = probe(self) {
                return v;
            }
            std::thread::sleep(WAIT_STEP);
        }
        panic!(
            "waited in vain for {what}; the page ({}) says:\n{}",
            self.url(),
            self.text("body")
        );
    }

    /// Saves what the window shows as a PNG at `path`.
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.must("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .expect("a base64 PNG");
        std::fs::create_dir_all(path.parent().expect("a folder")).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
        let mut driver = self.driver.lock().unwrap_or_else(|p| p.into_inner());
        let _ = driver.kill();
        let _ = driver.wait();
    }
}
