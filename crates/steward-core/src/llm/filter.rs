//! [`UsageChunkFilter`]: removes from an OpenAI chat/completions stream the
//! usage-only chunk that exists only because steward added
//! `stream_options.include_usage` to a request whose client did not ask for it.
//!
//! The filter works on raw bytes and passes every byte through unchanged
//! except that one event. It holds back only the event currently being
//! received (an SSE event is the lines up to an empty line), because whether
//! an event is the usage chunk is known only once it is complete; an event
//! larger than [`FILTER_HOLD_LIMIT`] cannot be a usage chunk and is relayed
//! as it arrives. The first byte of each complete event therefore reaches
//! the client as soon as the event's last byte arrives from upstream.
//!
//! A chunk that carries both `choices` content and `usage` (some compatible
//! servers put usage on the last content chunk) is passed through: it holds
//! content the client needs, and an extra `usage` field is harmless to SDKs.

use serde_json::Value;

/// Largest event held back to be inspected. A usage-only chunk is a few
/// hundred bytes; anything larger is relayed without waiting for its end.
pub const FILTER_HOLD_LIMIT: usize = 64 << 10;

/// Where a `\n` that directly follows a `\r` goes: the pair is one line end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterCr {
    /// The previous byte was not `\r`.
    Nothing,
    /// It ended a line inside the current event.
    Event,
    /// It ended an event that was relayed.
    Relayed,
    /// It ended the event that was dropped.
    Dropped,
}

/// Drops the usage-only chunk from a relayed stream. See the module docs.
#[derive(Debug, Clone)]
pub struct UsageChunkFilter {
    /// The bytes of the current, incomplete event.
    held: Vec<u8>,
    /// The current event outgrew [`FILTER_HOLD_LIMIT`]: its bytes are
    /// relayed as they come.
    relaying: bool,
    /// Bytes on the current line so far, line end excluded.
    line_len: usize,
    /// Where a `\n` after a `\r` belongs.
    after_cr: AfterCr,
    /// Events dropped so far.
    dropped: u64,
}

impl Default for UsageChunkFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl UsageChunkFilter {
    /// A filter at the start of a stream.
    pub fn new() -> UsageChunkFilter {
        UsageChunkFilter { held: Vec::new(), relaying: false, line_len: 0, after_cr: AfterCr::Nothing, dropped: 0 }
    }

    /// The bytes of `chunk` to relay now: everything up to the end of the
    /// last complete event (minus a usage-only event), plus the start of an
    /// event too large to hold.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len() + self.held.len());
        let mut rest = chunk;
        while let Some((&first, tail)) = rest.split_first() {
            let after_cr = std::mem::replace(&mut self.after_cr, AfterCr::Nothing);
            if first == b'\n' && after_cr != AfterCr::Nothing {
                match after_cr {
                    AfterCr::Event => self.append(b"\n", &mut out),
                    AfterCr::Relayed => out.push(b'\n'),
                    AfterCr::Dropped | AfterCr::Nothing => {}
                }
                rest = tail;
                continue;
            }
            let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.line_len += rest.len();
                self.append(rest, &mut out);
                break;
            };
            let terminator = rest[end];
            let blank_line = self.line_len == 0 && end == 0;
            self.append(&rest[..=end], &mut out);
            self.line_len = 0;
            let after = if blank_line { self.end_event(&mut out) } else { AfterCr::Event };
            if terminator == b'\r' {
                self.after_cr = after;
            }
            rest = &rest[end + 1..];
        }
        out
    }

    /// The bytes still held at the end of the stream (an event the upstream
    /// never finished), relayed as they are: SSE clients discard an
    /// unfinished event themselves.
    pub fn finish(&mut self) -> Vec<u8> {
        self.relaying = false;
        self.line_len = 0;
        self.after_cr = AfterCr::Nothing;
        std::mem::take(&mut self.held)
    }

    /// How many events were dropped (0 or 1 in a well-formed stream).
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    /// Adds bytes of the current event: held, or relayed once it is too large.
    fn append(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.relaying {
            out.extend_from_slice(bytes);
            return;
        }
        self.held.extend_from_slice(bytes);
        if self.held.len() > FILTER_HOLD_LIMIT {
            out.append(&mut self.held);
            self.relaying = true;
        }
    }

    /// The current event is complete: relay or drop it.
    fn end_event(&mut self, out: &mut Vec<u8>) -> AfterCr {
        if std::mem::take(&mut self.relaying) {
            return AfterCr::Relayed;
        }
        if is_usage_only_chunk(&self.held) {
            self.held.clear();
            self.dropped += 1;
            return AfterCr::Dropped;
        }
        out.append(&mut self.held);
        AfterCr::Relayed
    }
}

/// Whether a complete event is a chat chunk carrying usage and no choices.
fn is_usage_only_chunk(event: &[u8]) -> bool {
    // Content chunks are the vast majority: skip parsing those without usage.
    if !event.windows(7).any(|w| w == b"\"usage\"") {
        return false;
    }
    let mut data = Vec::new();
    let mut has_data = false;
    for line in lines(event) {
        let value = match line.strip_prefix(b"data") {
            Some([]) => &[][..],
            Some([b':', value @ ..]) => value.strip_prefix(b" ").unwrap_or(value),
            _ => continue,
        };
        if has_data {
            data.push(b'\n');
        }
        data.extend_from_slice(value);
        has_data = true;
    }
    let Ok(chunk) = serde_json::from_slice::<Value>(&data) else {
        return false;
    };
    // `choices` must be present and empty: Anthropic's `message_delta` also
    // has a top-level `usage` and no `choices`, and must never be dropped.
    let no_choices = chunk.get("choices").and_then(Value::as_array).is_some_and(Vec::is_empty);
    no_choices && chunk.get("error").is_none() && chunk.get("usage").is_some_and(Value::is_object)
}

/// The lines of a complete event, without their `\n`, `\r\n` or `\r`.
fn lines(event: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < event.len() {
        match event[i] {
            b'\r' => {
                out.push(&event[start..i]);
                if event.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            b'\n' => {
                out.push(&event[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < event.len() {
        out.push(&event[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const USAGE: &[u8] = b"data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n";
    const CONTENT: &[u8] =
        b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n";
    const DONE: &[u8] = b"data: [DONE]\n\n";

    fn whole(filter: &mut UsageChunkFilter, input: &[u8]) -> Vec<u8> {
        let mut out = filter.feed(input);
        out.extend(filter.finish());
        out
    }

    #[test]
    fn drops_exactly_the_usage_only_event() {
        let input = [CONTENT, CONTENT, USAGE, DONE].concat();
        let mut filter = UsageChunkFilter::new();
        assert_eq!(whole(&mut filter, &input), [CONTENT, CONTENT, DONE].concat());
        assert_eq!(filter.dropped_events(), 1);
    }

    #[test]
    fn complete_events_are_relayed_at_once_and_only_the_open_one_is_held() {
        let mut filter = UsageChunkFilter::new();
        let input = [CONTENT, &CONTENT[..20]].concat();
        assert_eq!(filter.feed(&input), CONTENT);
        assert_eq!(filter.feed(&CONTENT[20..]), CONTENT);
        // The usage chunk is held until its blank line, then vanishes.
        assert_eq!(filter.feed(&USAGE[..USAGE.len() - 1]), b"");
        assert_eq!(filter.feed(&USAGE[USAGE.len() - 1..]), b"");
        assert_eq!(filter.feed(DONE), DONE);
    }

    #[test]
    fn usage_with_choices_and_other_events_pass() {
        let with_choices = b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n";
        let azure_filter = b"data: {\"choices\":[],\"prompt_filter_results\":[]}\n\n";
        let null_usage = b"data: {\"choices\":[],\"usage\":null}\n\n";
        let error = b"data: {\"error\":{\"type\":\"server_error\"},\"usage\":{}}\n\n";
        let comment = b": keep-alive \"usage\"\n\n";
        let no_choices_key = b"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}\n\n";
        let not_json = b"data: \"usage\" {\n\n";
        for event in [&with_choices[..], azure_filter, null_usage, error, comment, no_choices_key, not_json, b"\n"] {
            let mut filter = UsageChunkFilter::new();
            assert_eq!(whole(&mut filter, event), event, "{}", String::from_utf8_lossy(event));
            assert_eq!(filter.dropped_events(), 0);
        }
    }

    #[test]
    fn crlf_cr_and_multi_line_data_are_events_too() {
        let crlf = b"data: {\"choices\":[],\r\ndata: \"usage\":{\"prompt_tokens\":1}}\r\n\r\n";
        let cr = b"event: x\rdata:{\"usage\":{},\"choices\":[]}\r\r";
        for usage in [&crlf[..], cr] {
            let input = [CONTENT, usage, DONE].concat();
            // Split between every pair of bytes: a `\r` at a chunk end must
            // take its `\n` along, whether the event is dropped or relayed.
            for split in 0..=input.len() {
                let mut filter = UsageChunkFilter::new();
                let mut out = filter.feed(&input[..split]);
                out.extend(filter.feed(&input[split..]));
                out.extend(filter.finish());
                assert_eq!(out, [CONTENT, DONE].concat(), "split at {split}");
            }
        }
        // A relayed event's CRLF stays whole.
        let relayed = b"data: {\"choices\":[{}],\"usage\":{}}\r\n\r\n";
        for split in 0..=relayed.len() {
            let mut filter = UsageChunkFilter::new();
            let mut out = filter.feed(&relayed[..split]);
            out.extend(filter.feed(&relayed[split..]));
            assert_eq!(out, relayed, "split at {split}");
        }
    }

    #[test]
    fn large_events_are_relayed_before_they_end() {
        let big =
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{}\"}}}}]}}\n\n", "x".repeat(FILTER_HOLD_LIMIT));
        let mut filter = UsageChunkFilter::new();
        let head = filter.feed(&big.as_bytes()[..FILTER_HOLD_LIMIT + 10]);
        assert_eq!(head, &big.as_bytes()[..FILTER_HOLD_LIMIT + 10]);
        let tail = filter.feed(&big.as_bytes()[FILTER_HOLD_LIMIT + 10..]);
        assert_eq!(tail, &big.as_bytes()[FILTER_HOLD_LIMIT + 10..]);
        // The next event is inspected again.
        assert_eq!(filter.feed(USAGE), b"");
        assert_eq!(filter.dropped_events(), 1);
    }

    #[test]
    fn an_unfinished_event_is_flushed_at_the_end() {
        let mut filter = UsageChunkFilter::new();
        assert_eq!(filter.feed(b"data: {\"choices\":[]"), b"");
        assert_eq!(filter.finish(), b"data: {\"choices\":[]");
        assert_eq!(filter.finish(), b"");
    }
}
