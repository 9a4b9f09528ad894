//! The event log file's writer: a thread of its own behind a bounded queue, so a slow or
//! stalled disk delays the file and nothing else. Whoever records an event only queues its
//! line; when the queue is full the line is left out of the file (it is still in memory).

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use super::rotating::Rotating;

/// Lines waiting for the file: at a few hundred bytes each, about 2 MB at most.
pub(super) const QUEUE_LINES: usize = 8192;

enum Msg {
    Line(Box<str>),
    /// Answered once every line queued before it is written.
    Flush(SyncSender<()>),
}

/// What became of a line handed to the writer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Queued {
    Yes,
    /// The queue is full: the file is behind.
    Full,
    /// The writer stopped after a write failed (it said why).
    Closed,
}

#[derive(Clone)]
pub(super) struct FileWriter {
    tx: SyncSender<Msg>,
}

impl FileWriter {
    pub(super) fn start(file: Rotating, capacity: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(capacity);
        std::thread::Builder::new()
            .name("xfed-events".into())
            .spawn(move || write_all(file, rx))?;
        Ok(Self { tx })
    }

    pub(super) fn queue(&self, line: Box<str>) -> Queued {
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => Queued::Yes,
            Err(TrySendError::Full(_)) => Queued::Full,
            Err(TrySendError::Disconnected(_)) => Queued::Closed,
        }
    }

    /// Waits up to `wait` for every line queued so far to be written; false if it was not.
    pub(super) fn flush(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let (done, written) = sync_channel(1);
        let mut msg = Msg::Flush(done);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => return false,
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        !matches!(
            written.recv_timeout(left),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected)
        )
    }
}

/// The writer thread: until every sender is gone or a write fails.
fn write_all(mut file: Rotating, rx: Receiver<Msg>) {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Line(line) => {
                if let Err(e) = file.append(&line) {
                    tracing::error!(error = %e, "cannot write the event log file; events are kept in memory only");
                    return;
                }
            }
            Msg::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::{Arc, Mutex};

    use super::super::{Event, EventLog, Kind, Query};
    use crate::config::EventsConfig;

    use super::*;

    /// A named pipe for the log's file, held open for reading and writing by the test (so
    /// opening it does not wait for a reader) and read by no one until `drain`: writes to it
    /// block once the pipe's buffer is full, as they would on a stalled disk.
    fn stalled_file(dir: &std::path::Path) -> (std::path::PathBuf, std::fs::File) {
        let path = dir.join("events.jsonl");
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let pipe = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (path, pipe)
    }

    #[test]
    fn a_stalled_file_holds_up_no_one_and_what_it_missed_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut pipe) = stalled_file(dir.path());
        let log = Arc::new(EventLog::new(&EventsConfig {
            file: Some(path),
            max_file_bytes: 0,
            keep_files: 0,
            memory: 100,
        }));
        // Far more than the pipe's buffer and the writer's queue hold together.
        let total = QUEUE_LINES as u64 + 10_000;
        let (done, finished) = sync_channel(1);
        let recorder = log.clone();
        std::thread::spawn(move || {
            for i in 0..total {
                recorder.record(Event::new(Kind::LinkUp).field("n", i));
            }
            let _ = done.send(());
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(30)).is_ok(),
            "recording waited for the stalled file"
        );
        let unwritten = log.unwritten();
        assert!(
            unwritten >= total - QUEUE_LINES as u64 - 1_000,
            "{unwritten} of {total} left out"
        );
        let newest = log.query(&Query {
            limit: Some(1),
            ..Query::default()
        });
        assert_eq!(newest[0]["n"], total - 1, "the ring has the newest");
        assert!(
            !log.flush(Duration::from_millis(200)),
            "the file is stalled"
        );

        // The disk comes back: what was queued is written, then new events again.
        let read = Arc::new(Mutex::new(Vec::new()));
        let reader = read.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = pipe.read(&mut buf) {
                reader.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        assert!(log.flush(Duration::from_secs(30)), "caught up");
        log.record(Event::new(Kind::LinkUp).field("n", "after"));
        assert!(log.flush(Duration::from_secs(30)));
        // Written is not yet read: the reader thread drains the pipe on its own time.
        let deadline = Instant::now() + Duration::from_secs(30);
        let text = loop {
            let text = String::from_utf8(read.lock().unwrap().clone()).unwrap();
            let done = text.ends_with('\n')
                && text
                    .lines()
                    .last()
                    .is_some_and(|l| l.contains("\"n\":\"after\""));
            if done || Instant::now() > deadline {
                break text;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len() as u64, total - unwritten + 1);
        assert_eq!(lines.last().unwrap()["n"], "after");
        // The gap shows in the file as a jump in `seq`.
        let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
        assert!(seqs.windows(2).any(|w| w[1] > w[0] + 1));
        assert!(seqs.windows(2).all(|w| w[1] > w[0]));
    }
}
