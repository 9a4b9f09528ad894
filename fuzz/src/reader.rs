//! The stream reader fed the way a socket would feed it, with what it yields recorded so
//! two feedings can be compared; and the reader target's checks.

use bytes::BytesMut;
use tokio_util::codec::Decoder;
use xfed::xmpp::{Frame, Limits, ReadError, StreamReader};

/// The header of an s2s stream (content namespace `jabber:server`).
pub const S2S_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='globex.example' to='acme.example' version='1.0'>";

/// The header of a component stream (XEP-0114, `jabber:component:accept`).
pub const COMPONENT_HEADER: &str = "<stream:stream xmlns='jabber:component:accept' \
    xmlns:stream='http://etherx.jabber.org/streams' to='acme.example'>";

/// A valid stanza and the stream's close, appended after an input the reader still waits on.
pub const PROBE: &str = "<message to='probe@acme.example' id='probe'/></stream:stream>";

/// A frame as plain data, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Open {
        to: Option<String>,
        from: Option<String>,
        id: Option<String>,
        version: Option<String>,
        default_ns: Option<String>,
        prefixes: Vec<(String, String)>,
    },
    Stanza {
        bytes: Vec<u8>,
        name: String,
        to: Option<String>,
        from: Option<String>,
        id: Option<String>,
        type_: Option<String>,
        xmlns: Option<String>,
    },
    Close,
}

impl Seen {
    pub fn of(frame: &Frame) -> Seen {
        match frame {
            Frame::Open(h) => Seen::Open {
                to: h.to.clone(),
                from: h.from.clone(),
                id: h.id.clone(),
                version: h.version.clone(),
                default_ns: h.default_ns.clone(),
                prefixes: h.prefixes.clone(),
            },
            Frame::Stanza(s) => Seen::Stanza {
                bytes: s.bytes.to_vec(),
                name: s.name.clone(),
                to: s.to.clone(),
                from: s.from.clone(),
                id: s.id.clone(),
                type_: s.type_.clone(),
                xmlns: s.xmlns.clone(),
            },
            Frame::Close => Seen::Close,
        }
    }
}

/// Where a feeding stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Waiting for more input, holding this many unconsumed bytes.
    NeedMore { held: usize },
    /// A stream error with this condition.
    Error(String),
}

/// A reader and its buffer, fed chunk by chunk.
pub struct Feeder {
    pub reader: StreamReader,
    pub buf: BytesMut,
    pub frames: Vec<Seen>,
    pub end: End,
}

impl Feeder {
    pub fn new(limits: Limits) -> Feeder {
        Feeder {
            reader: StreamReader::new(limits),
            buf: BytesMut::new(),
            frames: Vec::new(),
            end: End::NeedMore { held: 0 },
        }
    }

    /// Appends `chunk` and decodes every frame it completes. Nothing more is decoded after
    /// an error.
    pub fn feed(&mut self, chunk: &[u8]) {
        if matches!(self.end, End::Error(_)) {
            return;
        }
        self.buf.extend_from_slice(chunk);
        // Every frame consumes at least one byte, so this bound is never reached by a
        // decoder that makes progress.
        let bound = self.buf.len() + 2;
        for _ in 0..bound {
            match self.reader.decode(&mut self.buf) {
                Ok(Some(frame)) => self.frames.push(Seen::of(&frame)),
                Ok(None) => {
                    self.end = End::NeedMore {
                        held: self.buf.len(),
                    };
                    return;
                }
                Err(ReadError::Stream(e)) => {
                    self.end = End::Error(e.condition.as_str().to_owned());
                    return;
                }
                Err(ReadError::Io(e)) => panic!("the reader reported an I/O error: {e}"),
            }
        }
        panic!("the reader yielded more frames than there are bytes");
    }

    pub fn closed(&self) -> bool {
        self.frames.last() == Some(&Seen::Close)
    }
}

/// Feeds `data` in chunks of the given lengths (the rest in one last chunk).
pub fn feed_split(data: &[u8], limits: Limits, lengths: impl Iterator<Item = usize>) -> Feeder {
    let mut f = Feeder::new(limits);
    let mut at = 0;
    for len in lengths {
        if at >= data.len() {
            break;
        }
        let to = (at + len.max(1)).min(data.len());
        f.feed(&data[at..to]);
        at = to;
    }
    if at < data.len() {
        f.feed(&data[at..]);
    }
    f
}

/// Chunk lengths from a small deterministic generator seeded by the fuzz input, between 1
/// and `max`.
pub fn split_lengths(seed: u64, max: usize) -> impl Iterator<Item = usize> {
    let mut state = seed | 1;
    std::iter::from_fn(move || {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Some(1 + (state % max.max(1) as u64) as usize)
    })
}

/// The reader target: `data[0]` chooses the framing (raw input, or input after an s2s or a
/// component stream header) and the largest chunk; `data[1..9]` seeds the split points.
///
/// Checks: no panic; the same frames and the same end (a refusal, or the same bytes held)
/// whether the input comes whole, one byte at a time, or split at the derived points; and
/// an input the reader still waits on never absorbs what follows it (see [`check_probe`]).
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (seed, payload) = if rest.len() >= 8 {
        let (s, p) = rest.split_at(8);
        (u64::from_le_bytes(s.try_into().expect("8 bytes")), p)
    } else {
        (0x9e37_79b9_7f4a_7c15, rest)
    };
    let mut input = Vec::with_capacity(payload.len() + 256);
    match mode % 3 {
        0 => {}
        1 => input.extend_from_slice(S2S_HEADER.as_bytes()),
        _ => input.extend_from_slice(COMPONENT_HEADER.as_bytes()),
    }
    input.extend_from_slice(payload);
    let max_chunk = [1, 2, 3, 7, 16, 64, 512, 4096][usize::from(mode >> 5)];
    check_input(&input, seed, max_chunk);
}

/// The checks of [`check`] on a whole input.
pub fn check_input(input: &[u8], seed: u64, max_chunk: usize) {
    if super::known("bom") && input.windows(3).any(|w| w == "\u{feff}".as_bytes()) {
        return;
    }
    let limits = Limits::default();
    let whole = feed_split(input, limits, std::iter::empty());
    let split = feed_split(input, limits, split_lengths(seed, max_chunk));
    same(&whole, &split, "split at derived points");
    if input.len() <= 2048 {
        let bytes = feed_split(input, limits, std::iter::repeat(1));
        same(&whole, &bytes, "one byte at a time");
    }
    check_probe(input, whole);
}

fn same(whole: &Feeder, other: &Feeder, how: &str) {
    assert_eq!(
        whole.frames, other.frames,
        "frames differ between the whole input and the input {how}"
    );
    // Both refuse, or both wait holding the same bytes. The condition of a refusal may
    // differ (see docs/FUZZING.md, "known divergences"): text before a '>' has arrived is
    // judged by its first byte, after it by quick-xml.
    let kind = |f: &Feeder| match &f.end {
        End::Error(_) => None,
        other => Some(other.clone()),
    };
    assert_eq!(
        kind(whole),
        kind(other),
        "the end differs between the whole input and the input {how}: {:?} / {:?}",
        whole.end,
        other.end
    );
}

/// An input after which the reader still waits for more must not swallow what follows:
/// after a valid stanza and `</stream:stream>`, the reader has either refused the stream or
/// yielded that very stanza and the close. Inside an open element the close does not match,
/// which is an error too; inside a CDATA section a `]]>` first ends it. A reader that still
/// waits has taken the valid stanza into something that can never become well-formed
/// (issue 18 defect 1: `<'/>`, `<a b='x/>`).
pub fn check_probe(input: &[u8], mut whole: Feeder) {
    if super::known("probe") {
        return;
    }
    if whole.closed() || matches!(whole.end, End::Error(_)) {
        return;
    }
    let before = whole.frames.len();
    whole.feed(PROBE.as_bytes());
    match &whole.end {
        End::Error(_) => return,
        End::NeedMore { .. } if whole.closed() => {
            let after = &whole.frames[before..];
            let probe_seen = after.len() >= 2
                && matches!(&after[after.len() - 2], Seen::Stanza { id, .. } if id.as_deref() == Some("probe"));
            assert!(
                probe_seen,
                "the stream closed but the probe stanza after the input was not yielded: {after:?}"
            );
            return;
        }
        End::NeedMore { .. } => {}
    }
    // Perhaps inside a CDATA section: end it first, then the probe must be refused.
    let mut again = feed_split(input, Limits::default(), std::iter::empty());
    again.feed(b"]]>");
    again.feed(PROBE.as_bytes());
    assert!(
        again.closed() || matches!(again.end, End::Error(_)),
        "the reader still waits after the input, ']]>', a valid stanza and </stream:stream>: \
         it swallowed them (held {:?})",
        again.end
    );
}
