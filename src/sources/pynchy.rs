//! pynchy itself, seen from outside with nothing patched (install notes §9):
//! the process that listens on its HTTP port, found through `/proc` and
//! followed by a pidfd so that its end is seen at once; and its two cheap
//! HTTP routes, `GET /api/groups` (built in memory: an answer proves its
//! event loop turns) and `GET /health` (`channels_connected`; costs pynchy
//! three git subprocesses, so asked rarely).
//!
//! Never asked: `/status` (a paid LiteLLM call per model and seconds of git
//! work), `/api/events` (users' messages flow through it) and any `POST`.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::watch::Changes;

/// The inodes of the TCP sockets listening on `port` (IPv4 and IPv6), from
/// `/proc/net/tcp{,6}`. Empty when nothing listens there.
pub fn listening_inodes(port: u16) -> Vec<u64> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = crate::file::read_text(Path::new(table), crate::file::PROC_TABLE) else {
            continue;
        };
        out.extend(text.lines().skip(1).filter_map(|l| listener(l, port)));
    }
    out
}

/// The inode of one `/proc/net/tcp` row when it listens on `port`.
fn listener(line: &str, port: u16) -> Option<u64> {
    let f: Vec<&str> = line.split_whitespace().collect();
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    let local = f.get(1)?;
    let (_, hex_port) = local.rsplit_once(':')?;
    let listening = *f.get(3)? == "0A";
    let ours = u16::from_str_radix(hex_port, 16).ok()? == port;
    (listening && ours).then(|| f.get(9)?.parse().ok())?
}

/// Who holds pynchy's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// Nothing listens on it.
    Nobody,
    /// This process: pynchy-status itself (a config that points it at its own port).
    Itself,
    /// A process whose file descriptors this user cannot read (pynchy runs
    /// as another user): the port alone is known.
    Hidden {
        inode: u64,
    },
    Process {
        pid: u32,
        inode: u64,
    },
}

fn holds(pid: &str, targets: &[String]) -> Result<bool, io::Error> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd"))?;
    for fd in dir.flatten() {
        if let Ok(link) = std::fs::read_link(fd.path()) {
            let link = link.to_string_lossy();
            if targets.iter().any(|t| *t == link) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Who holds one of `inodes`: `hint` (the last pid seen) is tried first.
pub fn holder(inodes: &[u64], hint: Option<u32>) -> Holder {
    let Some(&first) = inodes.first() else {
        return Holder::Nobody;
    };
    let targets: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    if holds("self", &targets).unwrap_or(false) {
        return Holder::Itself;
    }
    if let Some(pid) = hint {
        if holds(&pid.to_string(), &targets).unwrap_or(false) {
            return Holder::Process { pid, inode: first };
        }
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Holder::Hidden { inode: first };
    };
    // The earliest-started holder: a child that inherited the socket is not pynchy.
    let mut found: Option<(u64, u32)> = None;
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if holds(&pid.to_string(), &targets).unwrap_or(false) {
            let ticks = start_ticks(pid).unwrap_or(u64::MAX);
            if found.is_none_or(|(t, _)| ticks < t) {
                found = Some((ticks, pid));
            }
        }
    }
    match found {
        Some((_, pid)) => Holder::Process { pid, inode: first },
        None => Holder::Hidden { inode: first },
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks
/// after boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = crate::file::read_text(
        Path::new(&format!("/proc/{pid}/stat")),
        crate::file::PROC_FILE,
    )
    .ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// When the system booted (`btime` of `/proc/stat`), in seconds since the epoch.
fn boot_time() -> Option<i64> {
    let stat = crate::file::read_text(Path::new("/proc/stat"), crate::file::PROC_TABLE).ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// When process `pid` started (what `ps -o lstart` shows), to the clock tick.
pub fn started_at(pid: u32) -> Option<DateTime<Utc>> {
    let ticks = start_ticks(pid)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    let boot = boot_time()?;
    let millis = i64::try_from(ticks.checked_mul(1000)? / hz).ok()?;
    DateTime::from_timestamp_millis(boot.checked_mul(1000)?.checked_add(millis)?)
}

/// A pidfd for `pid` (Linux 5.3): readable once the process has ended.
fn pidfd(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the descriptor was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until process `pid` ends: by its pidfd, else (an old kernel) by
/// looking for `/proc/<pid>` every `poll`.
async fn ended(pid: u32, poll: Duration) {
    if let Ok(fd) = pidfd(pid) {
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it (and
        // its number) until it is dropped.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        };
        if let Ok(afd) = registered {
            let _ = afd.readable().await;
            return;
        }
    }
    while Path::new(&format!("/proc/{pid}")).exists() {
        tokio::time::sleep(poll).await;
    }
}

/// The command line of `pid`, its arguments joined by spaces.
fn cmdline(pid: u32) -> Option<String> {
    let raw = crate::file::read(
        Path::new(&format!("/proc/{pid}/cmdline")),
        crate::file::PROC_FILE,
    )
    .ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(args.join(" "))
}

/// Whether a command line runs pynchy: its program is `uv`, a `python` or
/// `pynchy` itself, and one of its words is `pynchy` (`uv run pynchy`,
/// `.venv/bin/python3 .venv/bin/pynchy`, `python -m pynchy`). Not
/// `journalctl -u pynchy` or an editor on `src/pynchy/...`.
pub fn runs_pynchy(args: &[&str]) -> bool {
    let base = |a: &str| a.rsplit('/').next().unwrap_or(a).to_string();
    let Some(program) = args.first().map(|a| base(a)) else {
        return false;
    };
    let launcher = program == "uv" || program == "pynchy" || program.starts_with("python");
    launcher && args.iter().any(|a| base(a) == "pynchy")
}

/// The youngest process working in `root` that runs pynchy
/// ([`runs_pynchy`]), other than this one: pynchy starting up before its
/// HTTP server listens.
pub fn starting_in(root: &Path) -> Option<u32> {
    let root = root.canonicalize().ok()?;
    let me = std::process::id();
    let mut youngest: Option<(Option<DateTime<Utc>>, u32)> = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) else {
            continue;
        };
        if cwd != root {
            continue;
        }
        let Some(line) = cmdline(pid) else { continue };
        if !runs_pynchy(&line.split(' ').collect::<Vec<_>>()) {
            continue;
        }
        let started = started_at(pid);
        if youngest.as_ref().is_none_or(|(t, _)| started > *t) {
            youngest = Some((started, pid));
        }
    }
    youngest.map(|(_, pid)| pid)
}

/// A process seen holding the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub pid: u32,
    pub started_at: Option<DateTime<Utc>>,
}

/// One end of a process seen holding the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub at: DateTime<Utc>,
    pub instant: Instant,
}

/// What the follower knows now.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Who holds the port.
    pub holder: Option<Holder>,
    /// The process holding it, when readable.
    pub process: Option<Seen>,
    /// The last time a process holding the port ended (or the port was let go).
    pub last_exit: Option<Exit>,
    /// When a new process took the port after another had held it (restarts).
    pub restarts: VecDeque<(Instant, DateTime<Utc>)>,
    /// Some process has held the port since this daemon started.
    pub ever_held: bool,
}

/// Restarts are remembered this long.
pub const RESTART_WINDOW: Duration = Duration::from_secs(600);

impl Observed {
    fn exit(&mut self) {
        self.process = None;
        self.last_exit = Some(Exit {
            at: Utc::now(),
            instant: Instant::now(),
        });
    }

    /// Restarts within the last ten minutes.
    pub fn restarts_recent(&self) -> usize {
        self.restarts
            .iter()
            .filter(|(t, _)| t.elapsed() < RESTART_WINDOW)
            .count()
    }
}

/// How often the port is looked at while nothing holds it: a new process
/// taking it shows within this.
pub const PORT_POLL: Duration = Duration::from_millis(500);

/// How often the port's socket is read again while a process whose `/proc`
/// is not readable holds it (its socket changing is a restart).
pub const HIDDEN_POLL: Duration = Duration::from_secs(5);

/// Whether something listens on loopback `port`: a connection attempt,
/// refused at once when nothing does. Cheaper by far than reading
/// `/proc/net/tcp`, which the kernel writes out whole (15 ms for the pair
/// on a host with 2,200 sockets, measured).
async fn port_open(port: u16) -> bool {
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    matches!(
        tokio::time::timeout(Duration::from_millis(500), connect).await,
        Ok(Ok(_))
    )
}

/// Follows who holds `port`, writing into `state` and marking `changes` on
/// every change: by pidfd while a readable process holds it; while nothing
/// holds it, by a connection attempt every [`PORT_POLL`] (the socket table
/// is read only once one succeeds); while a process this user cannot read
/// holds it, by its socket every [`HIDDEN_POLL`]. Runs until its task is
/// dropped.
pub async fn follow_port(port: u16, state: Arc<Mutex<Observed>>, changes: Arc<Changes>) {
    let lock =
        |s: &Mutex<Observed>| -> Observed { s.lock().unwrap_or_else(|p| p.into_inner()).clone() };
    let mut hint: Option<u32> = None;
    loop {
        let before = lock(&state).holder;
        let watched = matches!(before, Some(Holder::Hidden { .. } | Holder::Itself));
        let inodes = if watched || port_open(port).await {
            listening_inodes(port)
        } else {
            Vec::new()
        };
        let now = match (inodes.is_empty(), before) {
            (true, _) => Holder::Nobody,
            // The same socket as before: the same holder.
            (false, Some(h @ Holder::Hidden { inode })) if inodes.contains(&inode) => h,
            (false, _) => holder(&inodes, hint),
        };
        if record(&state, &now) {
            changes.mark();
        }
        match now {
            Holder::Process { pid, .. } => {
                hint = Some(pid);
                ended(pid, PORT_POLL).await;
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                s.exit();
                s.holder = Some(Holder::Nobody);
                drop(s);
                changes.mark();
            }
            Holder::Hidden { .. } | Holder::Itself => tokio::time::sleep(HIDDEN_POLL).await,
            Holder::Nobody => tokio::time::sleep(PORT_POLL).await,
        }
    }
}

/// Looks once at who holds `port`, recording it in `state`: what a first
/// collection does before the follower has run, so it never reports a
/// running pynchy as down.
pub fn look(port: u16, state: &Mutex<Observed>) {
    let inodes = listening_inodes(port);
    let now = if inodes.is_empty() {
        Holder::Nobody
    } else {
        holder(&inodes, None)
    };
    record(state, &now);
}

/// Records `now` as the port's holder; true when that is a change.
fn record(state: &Mutex<Observed>, now: &Holder) -> bool {
    let held = |h: &Holder| matches!(h, Holder::Process { .. } | Holder::Hidden { .. });
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    if s.holder.as_ref() == Some(now) {
        return false;
    }
    if s.holder.as_ref().is_some_and(held) {
        // The holder let go of the port, or another took its place.
        s.exit();
    }
    if held(now) {
        if s.ever_held {
            s.restarts.push_back((Instant::now(), Utc::now()));
        }
        s.ever_held = true;
    }
    while s
        .restarts
        .front()
        .is_some_and(|(t, _)| t.elapsed() >= RESTART_WINDOW)
    {
        s.restarts.pop_front();
    }
    s.process = match now {
        Holder::Process { pid, .. } => Some(Seen {
            pid: *pid,
            started_at: started_at(*pid),
        }),
        _ => None,
    };
    s.holder = Some(now.clone());
    true
}

/// How one HTTP probe of pynchy went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// It answered 2xx, with this body (capped).
    Answered(bytes::Bytes),
    /// It answered with another status.
    Status(u16),
    /// Nothing answered in time (a stuck event loop, a stopped process).
    TimedOut,
    /// The connection was refused or failed.
    Unreachable(String),
}

/// `GET {base}{path}`, giving up after `timeout`, reading at most `limit`.
pub async fn probe(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    timeout: Duration,
    limit: u64,
) -> Probe {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let send = client.get(&url).timeout(timeout).send();
    let resp = match send.await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Probe::TimedOut,
        Err(e) => return Probe::Unreachable(short(&e)),
    };
    if !resp.status().is_success() {
        return Probe::Status(resp.status().as_u16());
    }
    match tokio::time::timeout(timeout, crate::client::read_capped(resp, limit)).await {
        Err(_) => Probe::TimedOut,
        Ok(Ok(b)) => Probe::Answered(b),
        Ok(Err(e)) => Probe::Unreachable(e.to_string()),
    }
}

/// An HTTP error in a few words, without the URL.
fn short(e: &reqwest::Error) -> String {
    if e.is_connect() {
        "connection refused".into()
    } else {
        e.without_url_ref()
    }
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text
                .replace(&format!(" ({url})"), "")
                .replace(url.as_str(), "");
        }
        text
    }
}

/// What pynchy-status reads of pynchy's `GET /health` answer (the rest is
/// git work it does itself).
#[derive(Debug, serde::Deserialize)]
pub struct Health {
    /// True when any channel is connected.
    pub channels_connected: Option<bool>,
}

/// pynchy's `GET /health` answer, when it is one.
pub fn health(body: &[u8]) -> Option<Health> {
    serde_json::from_slice(body).ok()
}

/// The port of an `http://host:port` URL (its scheme's default without one).
pub fn port_of(url: &str) -> Option<u16> {
    reqwest::Url::parse(url).ok()?.port_or_known_default()
}

/// Whether `data/deploy_continuation.json` under `root` exists: pynchy
/// writes it just before a deploy's restart.
pub fn deploy_continuation(root: &Path) -> Option<PathBuf> {
    let p = root.join("data/deploy_continuation.json");
    p.is_file().then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_pynchy_by_its_launcher() {
        for yes in [
            "uv run pynchy",
            "/home/p/.local/bin/uv run pynchy",
            "/home/p/pynchy/.venv/bin/python3 /home/p/pynchy/.venv/bin/pynchy",
            "python -m pynchy",
            "pynchy",
        ] {
            assert!(runs_pynchy(&yes.split(' ').collect::<Vec<_>>()), "{yes}");
        }
        for no in [
            "journalctl --user -fu pynchy",
            "vim src/pynchy/app.py",
            "python3 src/pynchy/app.py",
            "uv sync",
            "git pull",
            "",
        ] {
            assert!(!runs_pynchy(&no.split(' ').collect::<Vec<_>>()), "{no}");
        }
    }

    #[test]
    fn reads_a_listening_row() {
        let row = "   1: 00000000:2124 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listener(row, 0x2124), Some(123456));
        assert_eq!(listener(row, 8485), None);
        let established = row.replace(" 0A ", " 01 ");
        assert_eq!(listener(&established, 0x2124), None);
    }

    #[test]
    fn finds_its_own_listener_and_start() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inodes = listening_inodes(port);
        assert!(!inodes.is_empty());
        assert_eq!(holder(&inodes, None), Holder::Itself);
        let t = started_at(std::process::id()).unwrap();
        assert!(t <= Utc::now() && Utc::now() - t < chrono::Duration::hours(1));
    }

    #[test]
    fn ports_of_urls() {
        assert_eq!(port_of("http://127.0.0.1:8484"), Some(8484));
        assert_eq!(port_of("http://localhost/"), Some(80));
        assert_eq!(port_of("http://[::1]:9000/x"), Some(9000));
    }
}
