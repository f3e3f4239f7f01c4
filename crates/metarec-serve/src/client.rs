//! [`Client`]: a small blocking HTTP/1.1 client with keep-alive, for the integration tests, the
//! crash test and the load benchmark (`metarec bench serve`); it speaks just enough HTTP for this
//! server (requests with a body and a Content-Length, responses with a Content-Length).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response: status, headers and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The headers, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (`name` in lower case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection to a server, reopened when the server closes it.
pub struct Client {
    addr: SocketAddr,
    token: Option<String>,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client for `addr` that sends `token` as its bearer token (none: no Authorization).
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Client {
        Client {
            addr,
            token: token.map(str::to_owned),
            conn: None,
        }
    }

    fn connect(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.conn = Some(BufReader::new(stream));
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    /// Sends a request; a JSON `body` goes with `Content-Type: application/json`.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<Response> {
        let reused = self.conn.is_some();
        match self.try_request(method, path, body) {
            Ok(r) => Ok(r),
            // A kept-alive connection the server closed meanwhile: retry once on a fresh one.
            Err(_) if reused => {
                self.conn = None;
                self.try_request(method, path, body)
            }
            Err(e) => Err(e),
        }
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = body.unwrap_or_default();
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        let conn = self.connect()?;
        let mut message = head.into_bytes();
        message.extend_from_slice(body);
        // The server may answer (413) and close before reading a large body: read its answer
        // even when the write fails.
        let written = conn.get_mut().write_all(&message);
        let response = read_response(conn);
        match (response, written) {
            (Ok((r, close)), _) => {
                if close {
                    self.conn = None;
                }
                Ok(r)
            }
            (Err(e), Ok(())) | (Err(_), Err(e)) => {
                self.conn = None;
                Err(e)
            }
        }
    }
}

fn read_response(conn: &mut BufReader<TcpStream>) -> std::io::Result<(Response, bool)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut length = None;
    let mut close = false;
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "content-length" {
                length = Some(value.parse::<usize>().map_err(|_| bad("bad length"))?);
            } else if name == "connection" && value.eq_ignore_ascii_case("close") {
                close = true;
            }
            headers.push((name, value.to_owned()));
        }
    }
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            conn.read_exact(&mut body)?;
        }
        None => {
            conn.read_to_end(&mut body)?;
            close = true;
        }
    }
    Ok((
        Response {
            status,
            headers,
            body,
        },
        close,
    ))
}
