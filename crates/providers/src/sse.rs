//! An incremental Server-Sent-Events decoder: bytes in, whole events out, whatever the read
//! boundaries. It works on bytes and decodes an event's UTF-8 only once the event is complete.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Feed bytes with [`SseDecoder::push`], take events with [`SseDecoder::next_event`].
///
/// Lines end with `\n`, `\r\n` or `\r`; a blank line ends an event. Comment lines (starting with
/// `:`), `id:` and `retry:` are ignored. An event without a `data:` line is not dispatched.
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    /// Bytes of `buf` already parsed.
    pos: usize,
    /// The previous line ended with `\r`: a `\n` right after it belongs to that line end.
    skip_lf: bool,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseDecoder {
    pub fn new() -> Self {
        SseDecoder::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, or `None` until more bytes arrive.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if self.skip_lf && self.pos < self.buf.len() {
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                }
                self.skip_lf = false;
            }
            let rest = &self.buf[self.pos..];
            let end = rest.iter().position(|&b| b == b'\n' || b == b'\r')?;
            let start = self.pos;
            self.skip_lf = rest[end] == b'\r';
            self.pos += end + 1;
            if end == 0 {
                if let Some(event) = self.dispatch() {
                    return Some(event);
                }
            } else {
                self.field(start, start + end);
            }
        }
    }

    /// Ends the input: an event whose blank line never came is dispatched if it has data (a final
    /// line without its line end counts as a line).
    pub fn finish(&mut self) -> Option<SseEvent> {
        if let Some(event) = self.next_event() {
            return Some(event);
        }
        if self.pos < self.buf.len() {
            let (start, end) = (self.pos, self.buf.len());
            self.pos = end;
            self.field(start, end);
        }
        self.dispatch()
    }

    fn field(&mut self, start: usize, end: usize) {
        let line = &self.buf[start..end];
        if line[0] == b':' {
            return;
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let bytes = std::mem::take(&mut self.data);
        let data = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Some(SseEvent { event, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &mut SseDecoder) -> Vec<SseEvent> {
        std::iter::from_fn(|| d.next_event()).collect()
    }

    fn data(s: &str) -> SseEvent {
        SseEvent { event: None, data: s.to_owned() }
    }

    /// Feeds `input` in every possible pair of pieces and checks the same events come out.
    fn every_split(input: &[u8], expected: &[SseEvent]) {
        for cut in 0..=input.len() {
            let mut d = SseDecoder::new();
            d.push(&input[..cut]);
            let mut got = all(&mut d);
            d.push(&input[cut..]);
            got.extend(all(&mut d));
            assert_eq!(got, expected, "split at {cut}");
        }
        let mut d = SseDecoder::new();
        let mut got = Vec::new();
        for b in input {
            d.push(std::slice::from_ref(b));
            got.extend(all(&mut d));
        }
        assert_eq!(got, expected, "byte by byte");
    }

    #[test]
    fn lf_separated_events_split_anywhere() {
        every_split(b"data: one\n\ndata: two\n\n", &[data("one"), data("two")]);
    }

    #[test]
    fn crlf_separated_events() {
        every_split(b"data: one\r\n\r\ndata: two\r\n\r\n", &[data("one"), data("two")]);
    }

    #[test]
    fn cr_separated_events() {
        every_split(b"data: one\r\rdata: two\r\r", &[data("one"), data("two")]);
    }

    #[test]
    fn multi_byte_characters_split_across_reads() {
        let input = "data: é 日本 🦀\n\n".as_bytes();
        every_split(input, &[data("é 日本 🦀")]);
    }

    #[test]
    fn multiple_data_lines_are_joined_with_newlines() {
        every_split(b"data: a\ndata: b\ndata:\ndata: c\n\n", &[data("a\nb\n\nc")]);
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        every_split(b": keep-alive\n\nid: 1\nretry: 10\n: note\ndata: x\n\n", &[data("x")]);
    }

    #[test]
    fn only_one_space_after_the_colon_is_removed() {
        every_split(b"data:tight\n\ndata:  two spaces\n\n", &[data("tight"), data(" two spaces")]);
    }

    #[test]
    fn event_names_are_kept_and_reset() {
        let expected = [SseEvent { event: Some("error".into()), data: "{}".into() }, data("next")];
        every_split(b"event: error\ndata: {}\n\ndata: next\n\n", &expected);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        every_split(b"event: ping\n\ndata: x\n\n", &[data("x")]);
    }

    #[test]
    fn finish_flushes_an_unterminated_event() {
        let mut d = SseDecoder::new();
        d.push(b"data: [DONE]");
        assert_eq!(d.next_event(), None);
        assert_eq!(d.finish(), Some(data("[DONE]")));
        assert_eq!(d.finish(), None);
    }
}
