//! A server-sent-events parser: bytes in (as they arrive, split anywhere), whole messages
//! out. Follows the WHATWG rules the daemon's stream needs: `field: value` lines, one
//! leading space dropped from the value, `data` lines joined with `\n`, comments (`:`)
//! ignored, a blank line ends a message, `\n` or `\r\n` line ends.

/// One dispatched message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseMessage {
    /// `event:` (the daemon sends the event's type).
    pub event: Option<String>,
    /// `id:` (the daemon sends the sequence number).
    pub id: Option<String>,
    /// `data:` lines, joined by `\n`.
    pub data: String,
}

/// Incremental parser state.
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of an unfinished line (kept as bytes: a chunk may split a UTF-8 character).
    partial: Vec<u8>,
    event: Option<String>,
    id: Option<String>,
    data: Vec<String>,
}

/// The longest line kept; a longer one is cut (a misbehaving server must not grow us).
const MAX_LINE: usize = 1 << 20;

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; answers the messages it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<SseMessage> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            if self.partial.len() < MAX_LINE {
                self.partial.extend_from_slice(&rest[..nl]);
            }
            rest = &rest[nl + 1..];
            let mut line = std::mem::take(&mut self.partial);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(m) = self.line(&String::from_utf8_lossy(&line)) {
                out.push(m);
            }
        }
        if self.partial.len() < MAX_LINE {
            self.partial.extend_from_slice(rest);
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<SseMessage> {
        if line.is_empty() {
            if self.data.is_empty() && self.event.is_none() {
                self.id = None;
                return None;
            }
            return Some(SseMessage {
                event: self.event.take(),
                id: self.id.take(),
                data: std::mem::take(&mut self.data).join("\n"),
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => self.data.push(value.to_string()),
            "id" => self.id = Some(value.to_string()),
            // `retry` and unknown fields: ignored.
            _ => {}
        }
        None
    }
}
