//! Micro-benchmarks of the hot path's pieces: the stream reader (stanzas framed per second),
//! the namespace fix-up of a stanza that declares its stream's namespace, the routing lookup
//! (domain → tenant with 1,000 tenants and 100,000 domains), the privacy decision against
//! 100,000 static routes, and the dialback key (XEP-0185).
//!
//! `cargo bench --bench micro` (criterion prints medians; `-- --quick` for a short run).

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tokio_util::codec::Decoder;

use xfed::config::{Privacy, PrivacyMode, RouteTarget, Secret, StaticRoutes, TenantConfig};
use xfed::observe::Observer;
use xfed::routing::{policy, Router};
use xfed::s2s::dialback::DialbackKey;
use xfed::tenant::TenantActor;
use xfed::xmpp::{Frame, Limits, StreamReader};

const HEADER: &str = "<stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='remote.example' to='acme.example' version='1.0'>";

/// A 300-byte message, as the load harness sends.
fn message(i: usize) -> String {
    let head = format!(
        "<message from='u{i}@remote.example/r' to='a@acme.example' id='m{i:08}' type='chat'><body>"
    );
    let tail = "</body></message>";
    let pad = 300usize.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

fn reader(c: &mut Criterion) {
    const N: usize = 1000;
    let mut stream = String::from(HEADER);
    for i in 0..N {
        stream.push_str(&message(i));
    }
    let bytes = stream.into_bytes();
    let mut g = c.benchmark_group("reader");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("1000 messages of 300 bytes", |b| {
        b.iter_batched(
            || BytesMut::from(&bytes[..]),
            |mut buf| {
                let mut r = StreamReader::new(Limits {
                    max_stanza_bytes: 524_288,
                    max_depth: 64,
                });
                let mut n = 0;
                while let Ok(Some(frame)) = r.decode(&mut buf) {
                    if matches!(frame, Frame::Stanza(_)) {
                        n += 1;
                    }
                }
                assert_eq!(n, N);
                black_box(n)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn fixup(c: &mut Criterion) {
    let text = format!(
        "{HEADER}<message xmlns='jabber:component:accept' from='a@acme.example' to='u@remote.example' id='1'><body>{}</body></message>",
        "x".repeat(200)
    );
    let mut r = StreamReader::new(Limits {
        max_stanza_bytes: 524_288,
        max_depth: 64,
    });
    let mut buf = BytesMut::from(text.as_bytes());
    let stanza = loop {
        match r.decode(&mut buf) {
            Ok(Some(Frame::Stanza(s))) => break s,
            Ok(Some(_)) => continue,
            other => panic!("no stanza: {:?}", other.map(|_| ())),
        }
    };
    c.bench_function("namespace fix-up (explicit xmlns removed)", |b| {
        b.iter_batched(
            || stanza.clone(),
            |mut s| {
                s.drop_default_ns();
                black_box(s)
            },
            BatchSize::SmallInput,
        )
    });
}

fn tenant(i: usize, domains: usize) -> TenantConfig {
    TenantConfig {
        name: format!("t{i}"),
        file: format!("t{i}.toml").into(),
        secret: Secret::new("s"),
        domains: (0..domains).map(|d| format!("d{d}.t{i}.example")).collect(),
        chat_node_aliases: Vec::new(),
        privacy: Privacy {
            mode: PrivacyMode::AllowList,
            allow: BTreeSet::new(),
            deny: BTreeSet::new(),
        },
        static_routes: StaticRoutes::default(),
        tls: None,
    }
}

fn routing(c: &mut Criterion) {
    // 1,000 tenants of 100 domains each, installed by their actors.
    let system = actix::System::new();
    let router = system.block_on(async {
        let router = Router::new(Arc::new(Observer::in_memory()));
        for i in 0..1000 {
            let (_, slot) = TenantActor::start(Arc::new(tenant(i, 100)), router.observer.clone());
            router.install(slot);
        }
        router
    });
    let lookups: Vec<String> = (0..1024)
        .map(|k| format!("d{}.t{}.example", (k * 7) % 100, (k * 13) % 1000))
        .collect();
    let mut g = c.benchmark_group("routing");
    g.throughput(Throughput::Elements(lookups.len() as u64));
    g.bench_function("tenant_of, 100k domains", |b| {
        b.iter(|| {
            for d in &lookups {
                black_box(router.tenant_of(d).is_some());
            }
        })
    });
    g.finish();

    let mut routes = BTreeMap::new();
    for r in 0..100_000 {
        routes.insert(
            format!("r{r}.example"),
            vec![RouteTarget {
                host: "192.0.2.1".into(),
                port: 5269,
            }],
        );
    }
    let statics = StaticRoutes {
        enabled: true,
        routes,
    };
    let privacy = Privacy {
        mode: PrivacyMode::AllowList,
        allow: (0..100).map(|a| format!("a{a}.example")).collect(),
        deny: BTreeSet::new(),
    };
    let mut g = c.benchmark_group("policy");
    g.bench_function("permits, 100k static routes", |b| {
        b.iter(|| {
            black_box(policy::permits(
                &privacy,
                &statics,
                black_box("r77777.example"),
            ))
        })
    });
    g.finish();
}

/// The domain routing takes from an address, as it does twice per stanza: the plain path
/// against the full checks it replaces for everyday addresses.
fn addresses(c: &mut Criterion) {
    let addr = "romeo.montague@verona.example/balcony-1234";
    let mut g = c.benchmark_group("address domain");
    g.bench_function("address_domain (plain ASCII path)", |b| {
        b.iter(|| black_box(xfed::config::address_domain(black_box(addr)).is_ok()))
    });
    g.bench_function("jid::Jid::new + domain_key (full checks)", |b| {
        b.iter(|| {
            let jid = jid::Jid::new(black_box(addr)).unwrap();
            black_box(xfed::config::domain_key(jid.domain().as_str()).len())
        })
    });
    g.finish();
}

fn dialback(c: &mut Criterion) {
    let key = DialbackKey::new(&Secret::new("s3cr3tf0rd14lb4ck"));
    c.bench_function("dialback key (XEP-0185)", |b| {
        b.iter(|| {
            black_box(key.generate(
                black_box("remote.example"),
                black_box("acme.example"),
                black_box("D60000229F"),
            ))
        })
    });
}

criterion_group!(benches, reader, fixup, routing, addresses, dialback);
criterion_main!(benches);
