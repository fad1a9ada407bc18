//! A lean keep-alive HTTP/1.1 load client for the benches (loopback only,
//! bounded by a deadline). Latencies go into an HDR histogram, so memory stays
//! flat however long the run.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One request on a kept-alive connection; the answer must be 200.
pub async fn one_request(
    stream: &mut BufReader<TcpStream>,
    req: &[u8],
    line: &mut String,
    body: &mut Vec<u8>,
) -> std::io::Result<()> {
    stream.get_mut().write_all(req).await?;
    let mut len = 0usize;
    let mut first = true;
    loop {
        line.clear();
        if stream.read_line(line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if first {
            if !line.starts_with("HTTP/1.1 200") {
                return Err(std::io::Error::other(format!("bad status: {line}")));
            }
            first = false;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line
            .strip_prefix("content-length:")
            .or_else(|| line.strip_prefix("Content-Length:"))
        {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    body.resize(len, 0);
    stream.read_exact(body).await?;
    Ok(())
}

/// What a run measured.
pub struct Run {
    pub requests: u64,
    pub seconds: f64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

impl Run {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    pub fn p(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64
    }
}

/// Drives `conns` connections for `dur`, each cycling through `paths`.
pub async fn drive(addr: SocketAddr, paths: &[&str], conns: usize, dur: Duration) -> Run {
    let reqs: Arc<Vec<Vec<u8>>> = Arc::new(
        paths
            .iter()
            .map(|p| format!("GET {p} HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes())
            .collect(),
    );
    let deadline = Instant::now() + dur;
    let mut tasks = Vec::new();
    for c in 0..conns {
        let reqs = reqs.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
            let mut errors = 0u64;
            let Ok(s) = TcpStream::connect(addr).await else {
                return (hist, 1);
            };
            let _ = s.set_nodelay(true);
            let mut s = BufReader::new(s);
            let (mut line, mut body) = (String::new(), Vec::new());
            let mut i = c;
            while Instant::now() < deadline {
                let t = Instant::now();
                match one_request(&mut s, &reqs[i % reqs.len()], &mut line, &mut body).await {
                    Ok(()) => {
                        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                    }
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
                i += 1;
            }
            (hist, errors)
        }));
    }
    let start = Instant::now();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let mut errors = 0;
    for t in tasks {
        if let Ok((h, e)) = t.await {
            let _ = all.add(&h);
            errors += e;
        }
    }
    Run {
        requests: all.len(),
        seconds: start.elapsed().as_secs_f64(),
        errors,
        hist: all,
    }
}

/// Fetches one body.
pub async fn fetch(addr: SocketAddr, path: &str) -> bytes::Bytes {
    let mut s = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
    let (mut l, mut b) = (String::new(), Vec::new());
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    one_request(&mut s, req.as_bytes(), &mut l, &mut b)
        .await
        .expect("GET");
    bytes::Bytes::from(b)
}
