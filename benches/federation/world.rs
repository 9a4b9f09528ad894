//! Where the benchmark runs: a network namespace of its own (so both systems can listen on
//! 5269 at their own loopback addresses and dnsmasq can answer for the test domains), the
//! server processes started in it, and their resident memory.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Edge A: the load components connect here, and it dials B.
pub const A_IP: &str = "127.0.0.2";
/// Edge B: receives the s2s streams; the sink components connect here.
pub const B_IP: &str = "127.0.0.3";
/// Edge C: the remote that stops reading in the stuck-destination scenario (`c.test`).
pub const C_IP: &str = "127.0.0.8";
/// dnsmasq: every name under `a.test` is A_IP, under `b.test` B_IP, under `c.test` C_IP; no
/// SRV records, so both systems fall back to the address on port 5269.
pub const DNS_IP: &str = "127.0.0.53";
/// The component port on both edges.
pub const COMPONENT_PORT: u16 = 7400;
/// Set in the environment of the copy of the harness that runs inside the namespace.
const INNER: &str = "XFED_BENCH_NETNS";

/// Runs this program again inside a fresh namespace with the same arguments and returns its
/// exit code, or returns None when this already is the copy inside.
pub fn enter_namespace() -> Option<i32> {
    if std::env::var_os(INNER).is_some() {
        return None;
    }
    let ns = format!("xfedbench{}", std::process::id());
    let ok = |argv: &[&str]| {
        let out = Command::new(argv[0]).args(&argv[1..]).output();
        match out {
            Ok(o) if o.status.success() => true,
            Ok(o) => {
                eprintln!(
                    "{}: {}",
                    argv.join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                false
            }
            Err(e) => {
                eprintln!("{}: {e}", argv[0]);
                false
            }
        }
    };
    if !ok(&["ip", "netns", "add", &ns]) {
        eprintln!(
            "the federation benchmark needs root and iproute2 (it makes a network namespace)"
        );
        return Some(2);
    }
    let etc = PathBuf::from(format!("/etc/netns/{ns}"));
    let set_up = ok(&["ip", "-n", &ns, "link", "set", "lo", "up"])
        && [A_IP, B_IP, C_IP, DNS_IP].iter().all(|ip| {
            ok(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/8"),
                "dev",
                "lo",
            ])
        })
        && fs::create_dir_all(&etc).is_ok()
        && fs::write(etc.join("resolv.conf"), format!("nameserver {DNS_IP}\n")).is_ok();
    let code = if set_up {
        let me = std::env::current_exe().expect("the running program has a path");
        Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(me)
            .args(std::env::args_os().skip(1))
            .env(INNER, &ns)
            .status()
            .map(|s| s.code().unwrap_or(1))
            .unwrap_or(1)
    } else {
        1
    };
    ok(&["ip", "netns", "del", &ns]);
    let _ = fs::remove_dir_all(&etc);
    Some(code)
}

/// A process of the benchmark, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `argv` with output to `<dir>/<name>.log`.
    pub fn spawn(name: &str, dir: &Path, argv: &[String], env: &[(&str, &str)]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).expect("the work folder is writable");
        let err = out.try_clone().expect("a file handle can be cloned");
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .envs(env.iter().copied())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", argv[0]));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time the process has used (user + system), in milliseconds.
    pub fn cpu_ms(&self) -> u64 {
        process_cpu_ms(self.pid())
    }

    /// Context switches of all the process's threads so far (voluntary and not): a count
    /// that a busy host's stolen time does not distort, unlike CPU time.
    pub fn switches(&self) -> u64 {
        let Ok(tasks) = fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return 0;
        };
        tasks
            .flatten()
            .filter_map(|t| fs::read_to_string(t.path().join("status")).ok())
            .map(|status| {
                status
                    .lines()
                    .filter(|l| l.contains("ctxt_switches:"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum()
    }

    /// Resident memory of the process in bytes (VmRSS).
    pub fn rss(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// File descriptors the process holds open.
    pub fn open_files(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    /// The last lines of its log, for a failure message.
    pub fn tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until `addr` accepts TCP connections; panics with the log if the process exits
    /// or `limit` passes.
    pub fn wait_listening(&mut self, addr: SocketAddr, limit: Duration) {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before listening:\n{}",
                    self.name,
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} not listening on {addr} after {limit:?}:\n{}",
            self.name,
            self.tail()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// dnsmasq answering for `a.test`, `b.test` and `c.test` inside the namespace.
pub fn dns(dir: &Path) -> Proc {
    let argv: Vec<String> = [
        "dnsmasq",
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--listen-address=127.0.0.53",
        "--port=53",
        "--cache-size=10000",
        "--dns-forward-max=1000",
        "--local=/test/",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        format!("--address=/a.test/{A_IP}"),
        format!("--address=/b.test/{B_IP}"),
        format!("--address=/c.test/{C_IP}"),
        format!("--pid-file={}", dir.join("dnsmasq.pid").display()),
    ])
    .collect();
    let p = Proc::spawn("dnsmasq", dir, &argv, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = Command::new("ss").args(["-Hlun"]).output();
        if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("127.0.0.53:53 ")) {
            return p;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("dnsmasq did not start:\n{}", p.tail());
}

/// The soft limit on open files, which caps how many streams a node can hold here.
pub fn open_files_limit() -> u64 {
    let limits = fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// The host's CPU time so far, in clock ticks: (stolen by the hypervisor, all).
pub fn host_ticks() -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let all = fields.iter().take(8).sum();
    (fields.get(7).copied().unwrap_or(0), all)
}

/// User + system CPU time in a `/proc/.../stat` line, in milliseconds: after the command's
/// name in parentheses, state is field 3, utime and stime (in clock ticks) 14 and 15.
fn stat_cpu_ms(stat: &str) -> u64 {
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks * 1000 / clock_ticks()
}

/// CPU time process `pid` has used (user + system, its ended threads included), in
/// milliseconds.
pub fn process_cpu_ms(pid: u32) -> u64 {
    stat_cpu_ms(&fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// Each thread's CPU time so far: thread id -> (name, milliseconds).
pub type ThreadTimes = BTreeMap<u32, (String, u64)>;

/// The CPU time of each thread of process `pid` so far.
pub fn thread_cpu_ms(pid: u32) -> ThreadTimes {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return BTreeMap::new();
    };
    tasks
        .flatten()
        .filter_map(|t| {
            let tid = t.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(t.path().join("stat")).ok()?;
            let name = stat.split_once('(')?.1.rsplit_once(')')?.0.to_owned();
            Some((tid, (name, stat_cpu_ms(&stat))))
        })
        .collect()
}

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s CPU times (asked of `getconf`
/// once).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
            .max(1)
    })
}
