//! The one opener of `GET /status/stream` the tests share: the request on a
//! socket, the status line and headers read, then events one at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// An open event stream: its status, and the reader past its headers.
pub struct Sse {
    pub reader: BufReader<TcpStream>,
    pub status: u16,
}

impl Sse {
    /// Opens a stream on a new connection (10 s read timeout); panics when
    /// the server does not answer.
    pub fn open(addr: SocketAddr, headers: &[(&str, &str)]) -> Sse {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        Sse::open_on(s, addr, headers).expect("an answer to GET /status/stream")
    }

    /// Opens a stream on `s`, with the read timeout the caller set; an error
    /// when nothing answers in time (a connection left waiting in the accept
    /// queue).
    pub fn open_on(
        mut s: TcpStream,
        addr: SocketAddr,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Sse> {
        let mut req = format!("GET /status/stream HTTP/1.1\r\nHost: {addr}\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())?;
        // The head byte by byte, so that nothing past it is taken off the
        // socket: a client that stops reading here has read only the head.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not a status line: {head:?}")))?;
        let reader = BufReader::new(s);
        Ok(Sse { reader, status })
    }

    /// The next event, its name and data (chunked framing lines skipped);
    /// `None` when the stream ended (or the read timed out).
    pub fn try_next_event(&mut self) -> Option<(String, Value)> {
        let mut line = String::new();
        let mut event = String::from("message");
        loop {
            line.clear();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            if let Some(name) = line.strip_prefix("event: ") {
                event = name.trim_end().to_string();
            }
            if let Some(data) = line.strip_prefix("data: ") {
                let doc = serde_json::from_str(data.trim_end()).expect("an event's JSON");
                return Some((event, doc));
            }
        }
    }

    /// The next event; panics when the stream ends or times out first.
    pub fn next_event(&mut self) -> (String, Value) {
        self.try_next_event()
            .expect("an event before the stream ended or timed out")
    }

    /// The next `status` event's document, skipping `transition` events.
    pub fn next(&mut self) -> Value {
        loop {
            let (event, data) = self.next_event();
            if event == "status" {
                return data;
            }
        }
    }

    /// True once the server ended the stream (closed or reset it) within
    /// `tries` reads; a read that only timed out does not count.
    pub fn ended(&mut self, tries: usize) -> bool {
        let mut buf = vec![0u8; 64 * 1024];
        (0..tries).any(|_| match self.reader.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !timed_out(&e),
        })
    }
}

/// A read that only ran out of time (the socket's read timeout).
pub fn timed_out(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}
