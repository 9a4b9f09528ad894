//! The web console in a real headless browser (Debian's chromium, driven over WebDriver):
//! signing in, a federated connection appearing live and closed from the page, a staged
//! change restarted for one tenant while the other's link stays, markup from the network
//! shown as text, and a POST without the CSRF token refused. Each page is saved as a
//! screenshot under `target/console-screenshots/`.
//!
//! Node A runs tenants acme and globex under the restart scheduler, changes delayed; node B
//! (tenant partner) federates with both.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

#[cfg(feature = "cluster")]
#[path = "console/cluster.rs"]
mod cluster;
#[cfg(feature = "cluster")]
#[path = "cluster/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::fed::*;
use common::*;
use serde_json::{json, Value};
use webdriver::Browser;
use xfed::node::supervisor::Supervisor;
use xfed::restart::schedule::SystemClock;

const TOKEN: &str = "console-token";

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn tenant(name: &str, domain: &str, allow: &str, routes: &str) -> String {
    format!(
        "name = \"{name}\"\nsecret = \"{name}-secret\"\ndomains = [\"{domain}\"]\n\
         [privacy]\nmode = \"allow-list\"\nallow = [{allow}]\n\
         [static_routes]\nenabled = true\nroutes = {{ {routes} }}\n"
    )
}

struct World {
    dir: tempfile::TempDir,
    router_a: PathBuf,
    router_b: PathBuf,
    component_a: std::net::SocketAddr,
    s2s_a: std::net::SocketAddr,
    /// A's admin listener, where the console is.
    console: String,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (s2s_a, s2s_b, comp_a, admin_a) = (free_port(), free_port(), free_port(), free_port());
    let fed = "[federation]\nsecurity_mode = \"tls-required\"\nrequire_client_certs = false\n\
               dialback_secret_file = \"dialback.secret\"\n";
    let a = dir.path().join("a");
    write(&a.join("dialback.secret"), "shared");
    write(&a.join("admin.token"), TOKEN);
    write(
        &a.join("router.toml"),
        &format!(
            "tenants_dir = \"tenants\"\n[node]\nname = \"a\"\n[listen]\ns2s = \"127.0.0.1:{s2s_a}\"\n\
             component = \"127.0.0.1:{comp_a}\"\nadmin = \"127.0.0.1:{admin_a}\"\n\
             [admin]\ntoken_file = \"admin.token\"\n\
             [restart]\ndelayed = true\nschedule = \"0 30 0 * * *\"\n{fed}"
        ),
    );
    let to_b = format!("\"partner.example\" = [\"127.0.0.1:{s2s_b}\"]");
    for (name, domain) in [("acme", "acme.example"), ("globex", "globex.example")] {
        write(
            &a.join(format!("tenants/{name}.toml")),
            &tenant(name, domain, "\"partner.example\"", &to_b),
        );
    }
    let b = dir.path().join("b");
    write(&b.join("dialback.secret"), "shared");
    write(
        &b.join("router.toml"),
        &format!(
            "tenants_dir = \"tenants\"\n[node]\nname = \"b\"\n[listen]\ns2s = \"127.0.0.1:{s2s_b}\"\n\
             component = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{fed}"
        ),
    );
    write(
        &b.join("tenants/partner.toml"),
        &tenant(
            "partner",
            "partner.example",
            "\"acme.example\", \"globex.example\"",
            &format!(
                "\"acme.example\" = [\"127.0.0.1:{s2s_a}\"], \"globex.example\" = [\"127.0.0.1:{s2s_a}\"]"
            ),
        ),
    );
    World {
        router_a: a.join("router.toml"),
        router_b: b.join("router.toml"),
        component_a: format!("127.0.0.1:{comp_a}").parse().unwrap(),
        s2s_a: format!("127.0.0.1:{s2s_a}").parse().unwrap(),
        console: format!("http://127.0.0.1:{admin_a}"),
        dir,
    }
}

/// Runs browser commands off this thread (the node's actors run on it).
async fn web<T: Send + 'static>(
    b: &Arc<Browser>,
    f: impl FnOnce(&Browser) -> T + Send + 'static,
) -> T {
    let b = b.clone();
    tokio::task::spawn_blocking(move || f(&b))
        .await
        .expect("the browser steps ran")
}

fn screenshot(b: &Browser, page: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/console-screenshots")
        .join(format!("{page}.png"));
    b.screenshot(&path);
}

/// A stanza from `from_domain` reaches the partner over s2s.
async fn crosses(link: &mut Raw, partner: &mut Raw, from_domain: &str, id: &str) {
    link.send(format!(
        "<message from='u@{from_domain}' to='p@partner.example' id='{id}'><body>hi</body></message>"
    ))
    .await;
    partner.expect(&format!("id='{id}'")).await;
}

/// A link is alive when a stanza to its own domain comes back over it.
async fn alive(link: &mut Raw, domain: &str, id: &str) {
    link.send(format!(
        "<message from='x@{domain}' to='y@{domain}' id='{id}'/>"
    ))
    .await;
    link.expect(&format!("id='{id}'")).await;
}

/// Ids of A's outgoing streams carrying `local`, as the console's table lists them.
fn outgoing_rows(b: &Browser, local: &str) -> Vec<String> {
    b.script(
        "return [...document.querySelectorAll('#connections-table tbody tr')]\
           .filter(r => r.textContent.includes('outgoing') && r.textContent.includes(arguments[0] + ' ↔'))\
           .map(r => r.dataset.id);",
        json!([local]),
    )
    .as_array()
    .map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    })
    .unwrap_or_default()
}

#[actix_rt::test]
async fn operator_runs_the_node_from_the_web_console() {
    let w = world();
    let cfg = xfed::config::load(&w.router_a).unwrap_or_else(|e| panic!("{e}"));
    let _sup = Supervisor::start(cfg, Arc::new(SystemClock))
        .await
        .expect("A starts");
    let node_b = start_at(&w.router_b).await;
    let mut acme = component(w.component_a, "acme.example", "acme-secret").await;
    let mut globex = component(w.component_a, "globex.example", "globex-secret").await;
    let mut partner = component(node_b.component_addr(), "partner.example", "partner-secret").await;
    let console = w.console.clone();
    let b = Arc::new(
        tokio::task::spawn_blocking(|| Browser::start(free_port()))
            .await
            .unwrap(),
    );

    // 1. A wrong token is refused; the right one signs in.
    let at = console.clone();
    web(&b, move |b| {
        b.goto(&format!("{at}/"));
        b.element("#token");
        assert!(b.url().ends_with("/console/login"), "{}", b.url());
        screenshot(b, "login");
        b.type_into("#token", "guess");
        b.click("#sign-in");
        let problem = b.wait("the refusal", |b| {
            Some(b.text("#problem")).filter(|t| !t.is_empty())
        });
        assert!(problem.contains("not the admin token"), "{problem}");
        assert!(b.find("#sign-out").is_none());
        b.type_into("#token", TOKEN);
        b.click("#sign-in");
        let state = b.wait("the federation state", |b| {
            Some(b.text("#federation-state")).filter(|t| !t.is_empty())
        });
        assert_eq!(state, "Federation active");
        b.wait("the tenants' reach", |b| {
            Some(b.text("#reach-table")).filter(|t| t.contains("globex"))
        });
        screenshot(b, "status");
    })
    .await;

    // 2. A federated message makes its connection appear, without reloading the page.
    web(&b, move |b| {
        b.click("a[href='/console/connections']");
        b.element("#connections-table, #connections p.empty");
        assert!(outgoing_rows(b, "acme.example").is_empty());
        // Set on this page: still there later means the page was never reloaded.
        b.script("window.sameDocument = 'yes';", json!([]));
    })
    .await;
    crosses(&mut acme, &mut partner, "acme.example", "a1").await;
    crosses(&mut globex, &mut partner, "globex.example", "g1").await;
    let acme_stream = web(&b, |b| {
        let rows = b.wait("acme's outgoing stream in the table", |b| {
            let rows = outgoing_rows(b, "acme.example");
            (!rows.is_empty()).then_some(rows)
        });
        assert_eq!(b.script("return window.sameDocument;", json!([])), "yes");
        assert_eq!(rows.len(), 1);
        let row = b.text(&format!("#conn-{}", rows[0]));
        assert!(
            row.contains("acme.example ↔ partner.example (dialback)"),
            "{row}"
        );
        assert!(row.contains("TLSv1_3"), "{row}");
        screenshot(b, "connections");
        rows[0].clone()
    })
    .await;

    // 3. Closed from the page, after a confirmation: gone from the table, and logged.
    let id = acme_stream.clone();
    web(&b, move |b| {
        b.click(&format!("#conn-{id} button[data-close]"));
        let asked = b.accept_dialog();
        assert!(asked.contains(&format!("Close stream {id}")), "{asked}");
        b.wait("the closed stream to leave the table", |b| {
            b.find(&format!("#conn-{id}")).is_none().then_some(())
        });
        b.click("a[href='/console/events']");
        let logged = b.wait("the stream_closed event", |b| {
            let t = b.text("#events-table");
            t.lines()
                .any(|l| l.contains("stream_closed"))
                .then_some(t)
                .filter(|t| t.contains(&format!("stream: {id}")) && t.contains("operator"))
        });
        assert!(logged.contains("partner.example"), "{logged}");
        screenshot(b, "events");
    })
    .await;

    // 4. Markup from the network is text: a peer names a "domain" that is a script.
    let probe = "<script>window.xssProbe = 1</script><img src=x onerror=\"window.xssProbe = 2; document.title = 'pwned'\">";
    let mut evil = Raw::connect(w.s2s_a).await;
    evil.send(format!(
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         to='{}' version='1.0'>",
        probe
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    ))
    .await;
    evil.read_to_close().await;
    web(&b, move |b| {
        let shown = b.wait("the probe's event", |b| {
            Some(b.text("#events-table")).filter(|t| t.contains("is not a domain hosted here"))
        });
        assert!(
            shown.contains("<script>window.xssProbe = 1</script>"),
            "{shown}"
        );
        assert!(shown.contains("onerror="), "{shown}");
        assert_eq!(
            b.script("return typeof window.xssProbe;", json!([])),
            "undefined"
        );
        assert_ne!(b.title(), "pwned");
        assert_eq!(
            b.script(
                "return document.querySelectorAll('main script, main img').length;",
                json!([])
            ),
            0
        );
        screenshot(b, "events");
    })
    .await;

    // 5. A POST without the CSRF token (or with another's) is refused, signed in or not.
    let at = console.clone();
    web(&b, move |b| {
        let status = |headers: Value| {
            b.script_async(
                "const done = arguments[arguments.length - 1]; \
                 fetch('/console/action/reload', {method: 'POST', headers: arguments[0]}) \
                   .then(r => done(r.status), e => done(String(e)));",
                json!([headers]),
            )
        };
        assert_eq!(status(json!({})), 403);
        assert_eq!(status(json!({"X-CSRF-Token": "0".repeat(64)})), 403);
        // Outside the browser: no session at all.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let r = agent
            .post(format!("{at}/console/action/reload"))
            .send_empty()
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    })
    .await;

    // 6. A staged change to acme, restarted from the page for acme alone; globex's link and
    //    stream stay.
    let globex_stream = web(&b, |b| {
        b.click("a[href='/console/connections']");
        b.wait("globex's stream", |b| {
            outgoing_rows(b, "globex.example").pop()
        })
    })
    .await;
    let acme_file = w.dir.path().join("a/tenants/acme.toml");
    let text = std::fs::read_to_string(&acme_file).unwrap();
    std::fs::write(
        &acme_file,
        text.replace(
            "domains = [\"acme.example\"]",
            "domains = [\"acme.example\", \"acme.net\"]",
        ),
    )
    .unwrap();
    web(&b, |b| {
        b.click("a[href='/console/changes']");
        b.element("#stale-table, #stale p.empty");
        b.click("#reload");
        b.accept_dialog();
        let staged = b.wait("the reload's outcome", |b| {
            Some(b.text("#outcome")).filter(|t| t.contains("staged"))
        });
        assert!(
            staged.contains("tenant acme") && staged.contains("domains +acme.net"),
            "{staged}"
        );
        b.wait("acme staged", |b| {
            Some(b.text("#stale-table")).filter(|t| t.contains("tenant acme"))
        });
        b.select("#a-tenant", "acme");
        b.click("#dry-run");
        let dry = b.wait("the dry run", |b| {
            Some(b.text("#outcome")).filter(|t| t.contains("Dry run"))
        });
        assert!(
            dry.contains("tenant acme") && !dry.contains("tenant globex"),
            "{dry}"
        );
        screenshot(b, "changes");
        b.click("#restart");
        let asked = b.accept_dialog();
        assert!(asked.contains("tenant acme"), "{asked}");
        let done = b.wait("the restart's outcome", |b| {
            Some(b.text("#outcome")).filter(|t| t.contains("restarted"))
        });
        assert!(
            done.contains("tenant acme") && !done.contains("globex"),
            "{done}"
        );
        b.wait("nothing staged", |b| {
            (b.find("#stale p.empty").is_some()).then_some(())
        });
    })
    .await;
    acme.read_to_close().await;
    alive(&mut globex, "globex.example", "g2").await;
    crosses(&mut globex, &mut partner, "globex.example", "g3").await;
    let gs = globex_stream.clone();
    web(&b, move |b| {
        b.click("a[href='/console/connections']");
        let rows = b.wait("globex's stream", |b| {
            let r = outgoing_rows(b, "globex.example");
            (!r.is_empty()).then_some(r)
        });
        assert_eq!(rows, vec![gs], "globex's stream was untouched");
    })
    .await;

    // The other pages, for the reviewer; then signing out ends the session.
    let at = console.clone();
    web(&b, move |b| {
        b.click("a[href='/console/status']");
        b.wait("a few samples in the charts", |b| {
            let n = b.script(
                "const p = document.querySelector('#chart-streams polyline'); \
                 return p ? p.points.numberOfItems : 0;",
                json!([]),
            );
            (n.as_u64().unwrap_or(0) >= 3).then_some(())
        });
        assert!(b.text("#reach-table").contains("acme"));
        screenshot(b, "status");
        b.click("a[href='/console/tenants']");
        let t = b.wait("the tenants", |b| {
            Some(b.text("#tenant-globex")).filter(|t| !t.is_empty())
        });
        assert!(t.contains("partner.example"), "{t}");
        // globex's link, with when it came up (this year) and the stanzas written to it.
        let link = b.text("#links-globex");
        assert!(
            link.contains("UP SINCE") && link.contains("STANZAS OUT"),
            "{link}"
        );
        assert!(!link.contains("unknown"), "{link}");
        b.script(
            "document.getElementById('tenant-globex').scrollIntoView();",
            json!([]),
        );
        screenshot(b, "tenants");
        b.click("a[href='/console/log-level']");
        b.element("#level");
        screenshot(b, "log-level");
        b.click("#sign-out");
        b.element("#token");
        b.goto(&format!("{at}/console/status"));
        b.element("#token");
        assert!(b.url().ends_with("/console/login"), "{}", b.url());
    })
    .await;
    drop(b);
    node_b.shutdown().await;
}

/// One HTTP/1.1 request over `io`, read to the end: the whole answer as text.
async fn http<S>(mut io: S, request: String) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    io.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, io.read_to_end(&mut answer))
        .await
        .expect("the admin listener answers in time")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

/// On an admin listener that is not loopback the console is HTTPS only (the node's
/// certificate, `Secure` cookie), plain HTTP to it is refused, and the API still answers
/// the CLI's plain HTTP with the bearer token.
#[actix_rt::test]
async fn off_loopback_the_console_is_https_only_and_the_api_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key, _) = pki.leaf("node", &["admin.example"]);
    let port = free_port();
    write(&dir.path().join("dialback.secret"), "shared");
    write(&dir.path().join("admin.token"), TOKEN);
    write(
        &dir.path().join("router.toml"),
        &format!(
            "tenants_dir = \"tenants\"\n[node]\nname = \"edge\"\n[listen]\ns2s = \"127.0.0.1:0\"\n\
             component = \"127.0.0.1:0\"\nadmin = \"0.0.0.0:{port}\"\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\n[admin]\ntoken_file = \"admin.token\"\n\
             [federation]\ndialback_secret_file = \"dialback.secret\"\n",
            cert.display(),
            key.display()
        ),
    );
    write(
        &dir.path().join("tenants/acme.toml"),
        &tenant("acme", "acme.example", "", ""),
    );
    let node = start_at(&dir.path().join("router.toml")).await;
    let at: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Over TLS, trusting the test CA: the console, and a Secure session cookie.
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.ca_path()).unwrap();
    for c in rustls::pki_types::pem::PemObject::pem_slice_iter(&ca) {
        let c: rustls::pki_types::CertificateDer = c.unwrap();
        roots.add(c).unwrap();
    }
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    );
    let tls = || async {
        let tcp = tokio::net::TcpStream::connect(at).await.unwrap();
        tokio_rustls::TlsConnector::from(client.clone())
            .connect("admin.example".try_into().unwrap(), tcp)
            .await
            .expect("a TLS handshake with the node's certificate")
    };
    let page = http(
        tls().await,
        "GET /console/login HTTP/1.1\r\nHost: admin.example\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("id=\"sign-in\""), "{page}");
    let body = format!("token={TOKEN}");
    let signed = http(
        tls().await,
        format!(
            "POST /console/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://127.0.0.1:{port}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(signed.starts_with("HTTP/1.1 303"), "{signed}");
    let cookie = signed
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {signed}"));
    for attribute in ["HttpOnly", "SameSite=Strict", "Max-Age=", "Secure"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }

    // Plain HTTP: the console refuses, the API answers with the token as ever.
    let plain = || async { tokio::net::TcpStream::connect(at).await.unwrap() };
    let refused = http(
        plain().await,
        "GET /console/login HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(refused.contains("HTTPS only"), "{refused}");
    let login = http(
        plain().await,
        format!(
            "POST /console/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(login.starts_with("HTTP/1.1 403"), "{login}");
    assert!(
        !login.to_ascii_lowercase().contains("set-cookie"),
        "{login}"
    );
    let token = dir.path().join("admin.token").display().to_string();
    let (ok, out, err) = xfed(&[
        "status",
        "--admin",
        &format!("http://{at}"),
        "--token-file",
        &token,
        "--json",
    ])
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("\"node\": \"edge\"") || out.contains("\"node\":\"edge\""),
        "{out}"
    );
    node.shutdown().await;
}
