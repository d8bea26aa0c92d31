//! An incremental `text/event-stream` framer: bytes in, whole events out (their raw bytes and their fields), so a
//! relay can pass each event on as soon as it is complete, unchanged or rewritten, without holding the stream.

use bytes::{Bytes, BytesMut};

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's bytes as received, up to and including the blank line that ends it.
    pub raw: Bytes,
    /// The `data` lines joined with `\n`; `None` when the event has no `data` field (a comment, a `retry`).
    pub data: Option<String>,
    /// The `event` field (`None` means `message`).
    pub event: Option<String>,
    /// The `id` field.
    pub id: Option<String>,
    /// The `retry` field, as sent.
    pub retry: Option<String>,
}

impl Event {
    /// Whether this is a `message` event (the only kind MCP sends JSON-RPC in).
    pub fn is_message(&self) -> bool {
        self.event.as_deref().is_none_or(|e| e == "message")
    }

    /// The same event with its data replaced by `data` (one line of JSON), keeping its type, id and retry.
    pub fn with_data(&self, data: &str) -> Bytes {
        encode(
            self.event.as_deref(),
            self.id.as_deref(),
            self.retry.as_deref(),
            data,
        )
    }
}

/// An event carrying one line of `data`.
pub fn encode(event: Option<&str>, id: Option<&str>, retry: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 48);
    if let Some(e) = event {
        out.push_str("event: ");
        out.push_str(e);
        out.push('\n');
    } else {
        out.push_str("event: message\n");
    }
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(r) = retry {
        out.push_str("retry: ");
        out.push_str(r);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

/// The stream broke the framing bound: one event longer than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLarge(pub usize);

/// Splits a byte stream into events.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// Where scanning resumes.
    scan: usize,
    /// Where the current line starts.
    line_start: usize,
    max_event: usize,
    started: bool,
}

impl Framer {
    pub fn new(max_event: usize) -> Framer {
        Framer {
            buf: BytesMut::new(),
            scan: 0,
            line_start: 0,
            max_event,
            started: false,
        }
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Event>, TooLarge> {
        let mut chunk = chunk;
        if !self.started && !chunk.is_empty() {
            self.started = true;
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
        }
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut i = self.scan;
        while i < self.buf.len() {
            let b = self.buf[i];
            let next = match b {
                b'\n' => i + 1,
                b'\r' => match self.buf.get(i + 1) {
                    Some(b'\n') => i + 2,
                    Some(_) => i + 1,
                    // A lone `\r` at the end: it may be the start of `\r\n`; wait for more.
                    None => break,
                },
                _ => {
                    i += 1;
                    continue;
                }
            };
            let empty_line = i == self.line_start;
            if empty_line {
                let raw = self.buf.split_to(next).freeze();
                if raw.len() > 2 || !raw.iter().all(|b| *b == b'\n' || *b == b'\r') {
                    out.push(parse(raw));
                }
                i = 0;
                self.line_start = 0;
            } else {
                i = next;
                self.line_start = next;
            }
        }
        self.scan = i;
        if self.buf.len() > self.max_event {
            return Err(TooLarge(self.max_event));
        }
        Ok(out)
    }

    /// Bytes of an event that has not been completed.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

fn parse(raw: Bytes) -> Event {
    let text = String::from_utf8_lossy(&raw);
    let mut data: Option<String> = None;
    let (mut event, mut id, mut retry) = (None, None, None);
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        // Lone `\r` line ends inside a line (rare): split on them too.
        for line in line.split('\r') {
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                "event" => event = Some(value.to_owned()),
                "id" if !value.contains('\0') => id = Some(value.to_owned()),
                "retry" => retry = Some(value.to_owned()),
                _ => {}
            }
        }
    }
    Event {
        raw,
        data,
        event,
        id,
        retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_endings_come_out_whole() {
        let mut f = Framer::new(1024);
        assert!(f.push(b"id: 0\nretry: 3000\ndata:\n").unwrap().is_empty());
        let out = f.push(b"\nevent: message\r\ndata: {\"a\"").unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id.as_deref(), Some("0"));
        assert_eq!(out[0].retry.as_deref(), Some("3000"));
        assert_eq!(out[0].data.as_deref(), Some(""));
        assert_eq!(&out[0].raw[..], b"id: 0\nretry: 3000\ndata:\n\n");
        let out = f.push(b":1}\r").unwrap();
        assert!(out.is_empty(), "a lone CR at the end waits");
        let out = f
            .push(b"\n\r\n: ping\n\nevent: other\ndata: x\n\ndata: y\ndata: z\r\r\n")
            .unwrap();
        let datas: Vec<_> = out.iter().map(|e| e.data.clone()).collect();
        assert_eq!(
            datas,
            vec![
                Some("{\"a\":1}".to_owned()),
                None,
                Some("x".to_owned()),
                Some("y\nz".to_owned())
            ]
        );
        assert!(out[0].is_message() && !out[2].is_message());
        assert_eq!(
            &out[0].raw[..],
            b"event: message\r\ndata: {\"a\":1}\r\n\r\n"
        );
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn an_event_longer_than_the_bound_is_refused() {
        let mut f = Framer::new(16);
        assert!(f.push(b"data: 0123456").unwrap().is_empty());
        assert_eq!(f.push(b"789abcdef").unwrap_err(), TooLarge(16));
    }

    #[test]
    fn a_rewritten_event_keeps_its_type_and_id() {
        let mut f = Framer::new(1024);
        let e = f
            .push(b"\xEF\xBB\xBFid: 7\ndata: old\n\n")
            .unwrap()
            .remove(0);
        assert_eq!(e.data.as_deref(), Some("old"));
        let new = e.with_data("{\"new\":true}");
        assert_eq!(&new[..], b"event: message\nid: 7\ndata: {\"new\":true}\n\n");
        let mut f2 = Framer::new(1024);
        let back = f2.push(&new).unwrap().remove(0);
        assert_eq!(back.data.as_deref(), Some("{\"new\":true}"));
        assert_eq!(back.id.as_deref(), Some("7"));
    }
}
