//! Reading `text/event-stream` (the SSE an HTTP MCP server answers with):
//! lines and events as the HTML standard's parser reads them, each event's
//! data bounded by `max_message_size` (a longer line or event is consumed,
//! not kept, and reported with its first bytes so the request it answers
//! can fail with a clear error). Only `data` matters to MCP; `id`, `event`,
//! `retry` and comments are read past.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

/// Bytes of an over-large SSE event kept to find the request id it answers.
const OVERSIZE_PREFIX: usize = 256;

/// One event of an SSE stream.
#[derive(Debug, PartialEq)]
pub(super) enum SseEvent {
    /// The `data` of a complete event (its lines joined by `\n`).
    Message(Vec<u8>),
    /// An event whose data was over the bound: dropped, with its first bytes.
    TooLarge { prefix: Vec<u8>, len: usize },
}

/// Reads `text/event-stream` events, each bounded by `max` bytes of data
/// (a longer line or event is consumed, not kept).
pub(super) struct SseReader<S> {
    stream: S,
    parser: SseParser,
}

impl<S, E> SseReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    pub(super) fn new(stream: S, max: usize) -> Self {
        Self { stream, parser: SseParser::new(max) }
    }

    /// The next event; `None` at the end of the stream (an event cut off
    /// there is dropped, as SSE says).
    pub(super) async fn next(&mut self) -> Result<Option<SseEvent>, E> {
        loop {
            if let Some(event) = self.parser.ready.pop_front() {
                return Ok(Some(event));
            }
            match self.stream.next().await {
                Some(chunk) => self.parser.feed(&chunk?),
                None => return Ok(None),
            }
        }
    }
}

/// The SSE line and event state machine (only `data` matters to MCP;
/// `id`, `event`, `retry` and comments are read past).
struct SseParser {
    max: usize,
    /// The current line so far (without its end), up to the bound.
    line: Vec<u8>,
    /// Bytes of the current line, kept or not.
    line_len: usize,
    /// The current event's data so far.
    data: Vec<u8>,
    /// Whether the current event has a `data` field.
    has_data: bool,
    /// The current event is over the bound: its first bytes and size.
    oversize: Option<(Vec<u8>, usize)>,
    /// The previous chunk ended in `\r` (a `\n` next ends nothing new).
    after_cr: bool,
    ready: std::collections::VecDeque<SseEvent>,
}

impl SseParser {
    fn new(max: usize) -> Self {
        Self {
            max,
            line: Vec::new(),
            line_len: 0,
            data: Vec::new(),
            has_data: false,
            oversize: None,
            after_cr: false,
            ready: std::collections::VecDeque::new(),
        }
    }

    /// A line may hold `data: ` and the event's bound.
    fn line_max(&self) -> usize {
        self.max.saturating_add(16)
    }

    fn feed(&mut self, mut chunk: &[u8]) {
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(at) => {
                    self.take(&chunk[..at]);
                    self.end_line();
                    let cr = chunk[at] == b'\r';
                    let mut rest = &chunk[at + 1..];
                    if cr {
                        if rest.is_empty() {
                            self.after_cr = true;
                        } else if rest[0] == b'\n' {
                            rest = &rest[1..];
                        }
                    }
                    chunk = rest;
                }
                None => {
                    self.take(chunk);
                    chunk = &[];
                }
            }
        }
    }

    fn take(&mut self, part: &[u8]) {
        if self.line_len + part.len() <= self.line_max() {
            self.line.extend_from_slice(part);
        } else if self.line.len() < OVERSIZE_PREFIX {
            let keep = (OVERSIZE_PREFIX - self.line.len()).min(part.len());
            self.line.extend_from_slice(&part[..keep]);
        }
        self.line_len += part.len();
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let len = std::mem::replace(&mut self.line_len, 0);
        if len == 0 {
            return self.dispatch();
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return,
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &[][..]),
        };
        if field != b"data" {
            return;
        }
        let value_len = len - (line.len() - value.len());
        let total = self.data.len() + usize::from(self.has_data) + value_len;
        if let Some((_, size)) = &mut self.oversize {
            *size += value_len + 1;
        } else if len > self.line_max() || total > self.max {
            let mut prefix = self.data.clone();
            prefix.extend_from_slice(value);
            prefix.truncate(OVERSIZE_PREFIX);
            self.oversize = Some((prefix, total));
            self.data.clear();
        } else {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
        }
        self.has_data = true;
    }

    fn dispatch(&mut self) {
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        if let Some((prefix, len)) = self.oversize.take() {
            self.ready.push_back(SseEvent::TooLarge { prefix, len });
        } else if has_data && !data.is_empty() {
            self.ready.push_back(SseEvent::Message(data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]], max: usize) -> Vec<SseEvent> {
        let mut parser = SseParser::new(max);
        for chunk in chunks {
            parser.feed(chunk);
        }
        parser.ready.into_iter().collect()
    }

    #[test]
    fn events_are_split_on_any_line_end_and_chunk_boundary() {
        let got =
            events(&[b"id: 1\nevent: message\ndata: {\"a\"", b":1}\r", b"\n\r\n: comment\n\ndata:x\ndata: y\n\n"], 64);
        assert_eq!(got, [SseEvent::Message(b"{\"a\":1}".to_vec()), SseEvent::Message(b"x\ny".to_vec())]);
    }

    #[test]
    fn a_priming_event_without_data_is_skipped_and_a_cut_event_is_dropped() {
        let got = events(&[b"id: abc\ndata:\n\nretry: 100\n\ndata: {\"b\":2}\n\ndata: cut"], 64);
        assert_eq!(got, [SseEvent::Message(b"{\"b\":2}".to_vec())]);
    }

    #[test]
    fn an_event_over_the_bound_is_dropped_with_its_id_and_the_next_one_passes() {
        let big = format!("data: {{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"{}\"}}\n\n", "x".repeat(500));
        let got = events(&[&big.as_bytes()[..100], &big.as_bytes()[100..], b"data: ok\n\n"], 200);
        let [SseEvent::TooLarge { prefix, len }, SseEvent::Message(ok)] = &got[..] else { panic!("{got:?}") };
        assert!(*len > 200);
        assert_eq!(super::super::stdio::request_id_in(prefix), Some(7));
        assert_eq!(ok, b"ok");
        // Many small data lines add up to the bound too.
        let lines = "data: 0123456789\n".repeat(30) + "\n";
        let got = events(&[lines.as_bytes()], 200);
        assert!(matches!(&got[..], [SseEvent::TooLarge { .. }]), "{got:?}");
    }
}
