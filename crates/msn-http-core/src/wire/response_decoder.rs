//! Incremental decoding of gateway responses: the head through `httparse`, `1xx` interim heads
//! skipped, then the body by length, chunks or connection close.

use std::mem::MaybeUninit;

use crate::error::HttpError;

use super::{
    BodyDecoder, BodyKind, BodyStep, FramingHeaders, HeadBuffer, HttpLimits, HttpVersion,
    MAX_HEADERS, head_fault,
};

/// What one call to [`ResponseDecoder::decode`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseStep<'a> {
    /// The input is used up; feed more (or call [`ResponseDecoder::finish`] at EOF).
    NeedMore,
    /// The final (non-1xx) head is complete: read it with [`ResponseDecoder::head`].
    Head,
    /// Body bytes, never empty, borrowed from the input.
    Body(&'a [u8]),
    /// The response is complete. Input left over belongs to no request of ours.
    Complete,
}

/// What an end of stream means for the response being decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EofOutcome {
    /// A close-delimited body ended: the response is complete.
    Complete,
    /// The response was cut short; `started` says whether any byte of it had arrived.
    Truncated {
        /// Whether any byte of the (final) response had arrived.
        started: bool,
    },
}

/// The parts of a response head the protocol needs. Buffers are reused between responses.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    version: HttpVersion,
    status: u16,
    keep_alive: bool,
    body: BodyKind,
    messenger: HeaderSlot,
    msn_host: HeaderSlot,
}

/// A header value copied into a buffer that is reused from one response to the next.
#[derive(Clone, Debug, Default)]
struct HeaderSlot {
    value: Vec<u8>,
    present: bool,
}

impl HeaderSlot {
    fn get(&self) -> Option<&[u8]> {
        self.present.then_some(self.value.as_slice())
    }

    /// Stores a value, refusing a second one in the same head.
    fn store_once(&mut self, value: &[u8], name: &'static str) -> Result<(), HttpError> {
        if self.present {
            return Err(HttpError::DuplicateHeader(name));
        }
        self.present = true;
        self.value.clear();
        self.value.extend_from_slice(value);
        Ok(())
    }
}

impl ResponseHead {
    fn new() -> Self {
        Self {
            version: HttpVersion::Http11,
            status: 0,
            keep_alive: false,
            body: BodyKind::Empty,
            messenger: HeaderSlot::default(),
            msn_host: HeaderSlot::default(),
        }
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// HTTP/1.0 or 1.1.
    pub fn version(&self) -> HttpVersion {
        self.version
    }

    /// Whether the connection may carry the next request.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// How the body is delimited.
    pub fn body_kind(&self) -> BodyKind {
        self.body
    }

    /// The raw `X-MSN-Messenger` value, if present.
    pub fn messenger(&self) -> Option<&[u8]> {
        self.messenger.get()
    }

    /// The raw `X-MSN-Host` value, if present.
    pub fn msn_host(&self) -> Option<&[u8]> {
        self.msn_host.get()
    }
}

enum State {
    Head,
    Body(BodyDecoder),
    /// Done, with the number of body bytes the response had.
    Complete {
        body_len: u64,
    },
}

/// Decodes one response at a time from bytes that may arrive in pieces of any size.
///
/// Memory is bounded: at most `max_head_bytes` of a head are buffered (and only when a head
/// arrives in pieces); body bytes are handed out as slices of the input, never buffered.
///
/// ```
/// use msn_http_core::wire::{HttpLimits, ResponseDecoder, ResponseStep};
///
/// let mut decoder = ResponseDecoder::new(HttpLimits::default());
/// let mut input: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
/// assert_eq!(decoder.decode(&mut input), Ok(ResponseStep::Head));
/// assert_eq!(decoder.head().status(), 200);
/// assert_eq!(decoder.decode(&mut input), Ok(ResponseStep::Body(b"abc")));
/// assert_eq!(decoder.decode(&mut input), Ok(ResponseStep::Complete));
/// ```
pub struct ResponseDecoder {
    limits: HttpLimits,
    state: State,
    head_buf: HeadBuffer,
    head: ResponseHead,
    started: bool,
    /// Bytes of the interim (`1xx`) heads before the final one: they count against the head
    /// limit, so a peer sending `100 Continue` forever is stopped like an endless head.
    interim_bytes: usize,
}

impl ResponseDecoder {
    /// A decoder with the given limits, expecting a response.
    pub fn new(limits: HttpLimits) -> Self {
        Self {
            limits,
            state: State::Head,
            head_buf: HeadBuffer::default(),
            head: ResponseHead::new(),
            started: false,
            interim_bytes: 0,
        }
    }

    /// Expect the next response (after [`ResponseStep::Complete`], or to abandon one).
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.head_buf.clear(None);
        self.started = false;
        self.interim_bytes = 0;
    }

    /// The head of the current response, valid after [`ResponseStep::Head`].
    pub fn head(&self) -> &ResponseHead {
        &self.head
    }

    /// Whether any byte of the final response (after interim `1xx` heads) has arrived.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Whether the current response is complete.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Complete { .. })
    }

    /// Decodes from the front of `input`, advancing it past what was used. Call again until it
    /// returns [`ResponseStep::NeedMore`] or [`ResponseStep::Complete`].
    pub fn decode<'a>(&mut self, input: &mut &'a [u8]) -> Result<ResponseStep<'a>, HttpError> {
        loop {
            match &mut self.state {
                State::Complete { .. } => return Ok(ResponseStep::Complete),
                State::Body(body) => {
                    return Ok(match body.decode(input)? {
                        BodyStep::Data(data) => ResponseStep::Body(data),
                        BodyStep::NeedMore => ResponseStep::NeedMore,
                        BodyStep::Done => {
                            self.state = State::Complete { body_len: body.received() };
                            ResponseStep::Complete
                        }
                    });
                }
                State::Head => {
                    if input.is_empty() {
                        return Ok(ResponseStep::NeedMore);
                    }
                    self.started = true;
                    if !self.read_head(input)? {
                        return Ok(ResponseStep::NeedMore);
                    }
                    if (100..200).contains(&self.head.status) {
                        // Interim response: no body; the final head follows.
                        self.started = false;
                        continue;
                    }
                    let body = BodyDecoder::new(self.head.body, self.limits.max_body_bytes)?;
                    self.state = State::Body(body);
                    return Ok(ResponseStep::Head);
                }
            }
        }
    }

    /// The connection reached EOF: completes a close-delimited body, otherwise reports what was
    /// cut short.
    pub fn finish(&mut self) -> EofOutcome {
        match &self.state {
            State::Complete { .. } => EofOutcome::Complete,
            State::Body(body) if body.is_close_delimited() => {
                self.state = State::Complete { body_len: body.received() };
                EofOutcome::Complete
            }
            _ => EofOutcome::Truncated { started: self.started },
        }
    }

    /// Body bytes of the current response decoded so far (all of them once it is complete).
    pub fn body_received(&self) -> u64 {
        match &self.state {
            State::Head => 0,
            State::Body(body) => body.received(),
            State::Complete { body_len } => *body_len,
        }
    }

    /// Accumulates and parses a head; `true` once one is complete. The interim heads before
    /// it leave it less room.
    fn read_head(&mut self, input: &mut &[u8]) -> Result<bool, HttpError> {
        let limit = self.limits.max_head_bytes;
        let room = limit.saturating_sub(self.interim_bytes);
        let head = &mut self.head;
        let mut head_len = None;
        let complete = self.head_buf.read(
            input,
            room,
            |bytes| {
                let parsed = parse_head(bytes, head)?;
                head_len = parsed;
                Ok(parsed)
            },
            |_| HttpError::HeadTooLarge { limit },
        )?;
        if complete && (100..200).contains(&self.head.status) {
            self.interim_bytes += head_len.expect("a head is complete once it parsed whole");
        }
        Ok(complete)
    }
}

/// Parses a complete head into `head`; `None` if `bytes` holds only part of one.
fn parse_head(bytes: &[u8], head: &mut ResponseHead) -> Result<Option<usize>, HttpError> {
    // Uninitialised slots: httparse fills only what it uses, so nothing is zeroed per head.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .parse_response_with_uninit_headers(&mut response, bytes, &mut fields)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(head_fault(e)),
    };
    let (Some(status), Some(minor)) = (response.code, response.version) else {
        return Ok(None);
    };
    if status == 101 {
        return Err(HttpError::UnexpectedUpgrade);
    }
    let version = HttpVersion::from_minor(minor);
    let mut framing = FramingHeaders::default();
    head.messenger.present = false;
    head.msn_host.present = false;
    for field in response.headers.iter() {
        framing.observe(field.name, field.value)?;
        if field.name.eq_ignore_ascii_case("x-msn-messenger") {
            head.messenger.store_once(field.value, "X-MSN-Messenger")?;
        } else if field.name.eq_ignore_ascii_case("x-msn-host") {
            head.msn_host.store_once(field.value, "X-MSN-Host")?;
        }
    }
    head.version = version;
    head.status = status;
    head.body = if (100..200).contains(&status) || status == 204 || status == 304 {
        BodyKind::Empty
    } else if framing.chunked {
        BodyKind::Chunked
    } else if framing.transfer_encoding {
        // A transfer coding without `chunked` last leaves the length to the connection close.
        BodyKind::CloseDelimited
    } else {
        match framing.content_length {
            Some(0) => BodyKind::Empty,
            Some(len) => BodyKind::Length(len),
            None => BodyKind::CloseDelimited,
        }
    };
    // A message with both framings may be a smuggling attempt: use chunked, then close.
    let ambiguous = framing.transfer_encoding && framing.content_length.is_some();
    head.keep_alive =
        framing.keep_alive(version) && head.body != BodyKind::CloseDelimited && !ambiguous;
    Ok(Some(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::HeadFault;

    /// Decodes `wire` in pieces of `step` bytes into (status, body, complete, keep_alive).
    fn decode(wire: &[u8], step: usize) -> Result<(u16, Vec<u8>, bool, bool), HttpError> {
        let mut d = ResponseDecoder::new(HttpLimits { max_head_bytes: 512, max_body_bytes: 4096 });
        let mut body = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            let mut input = piece;
            loop {
                match d.decode(&mut input)? {
                    ResponseStep::NeedMore | ResponseStep::Complete => break,
                    ResponseStep::Head => {}
                    ResponseStep::Body(b) => body.extend_from_slice(b),
                }
            }
        }
        Ok((d.head().status(), body, d.is_complete(), d.head().keep_alive()))
    }

    #[test]
    fn endless_interim_heads_fail_like_an_endless_head() {
        let one = b"HTTP/1.1 100 Continue\r\n\r\n";
        let wire = one.repeat(10_000);
        for step in [1, one.len(), 4096, wire.len()] {
            assert_eq!(decode(&wire, step), Err(HttpError::HeadTooLarge { limit: 512 }), "{step}");
        }
        // A few interim heads and the final head within the limit are fine.
        let mut wire = one.repeat(3);
        wire.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(decode(&wire, 1).map(|(status, ..)| status), Ok(200));
    }

    #[test]
    fn interim_heads_are_skipped() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\nX: y\r\n\r\nHTTP/1.1 200 Fine\r\nContent-Length: 2\r\n\r\nok";
        for step in 1..=wire.len() {
            assert_eq!(decode(wire, step).unwrap(), (200, b"ok".to_vec(), true, true), "{step}");
        }
    }

    #[test]
    fn http10_without_length_is_close_delimited() {
        let wire = b"HTTP/1.0 200 OK\r\nX-MSN-Messenger: SessionID=1\r\n\r\nVER 1 MSNP8\r\n";
        let mut d = ResponseDecoder::new(HttpLimits::default());
        let mut input: &[u8] = wire;
        assert_eq!(d.decode(&mut input), Ok(ResponseStep::Head));
        assert_eq!(d.head().body_kind(), BodyKind::CloseDelimited);
        assert!(!d.head().keep_alive());
        assert_eq!(d.head().messenger(), Some(&b"SessionID=1"[..]));
        assert_eq!(d.decode(&mut input), Ok(ResponseStep::Body(b"VER 1 MSNP8\r\n")));
        assert_eq!(d.decode(&mut input), Ok(ResponseStep::NeedMore));
        assert_eq!(d.finish(), EofOutcome::Complete);
        assert!(d.is_complete());
        assert_eq!(d.body_received(), 13, "the length survives completion");
    }

    #[test]
    fn eof_in_the_middle_is_truncation() {
        let mut d = ResponseDecoder::new(HttpLimits::default());
        assert_eq!(d.finish(), EofOutcome::Truncated { started: false });
        let mut input: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Le";
        assert_eq!(d.decode(&mut input), Ok(ResponseStep::NeedMore));
        assert_eq!(d.finish(), EofOutcome::Truncated { started: true });
    }

    #[test]
    fn head_limit_holds_at_every_split() {
        let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
        while wire.len() < 600 {
            wire.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        wire.extend_from_slice(b"\r\n");
        for step in [1, 7, 100, 511, 512, 513, wire.len()] {
            assert_eq!(decode(&wire, step), Err(HttpError::HeadTooLarge { limit: 512 }), "{step}");
        }
    }

    #[test]
    fn bad_heads_give_typed_errors() {
        let cases: [(&[u8], HttpError); 6] = [
            (b"HTTP/2.0 200 OK\r\n\r\n", HttpError::MalformedHead(HeadFault::Version)),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", HttpError::MalformedHead(HeadFault::Status)),
            (b"HTTP/1.1 200 OK\r\nA\0: b\r\n\r\n", HttpError::MalformedHead(HeadFault::HeaderName)),
            (b"HTTP/1.1 101 Switching\r\n\r\n", HttpError::UnexpectedUpgrade),
            (
                b"HTTP/1.1 200 OK\r\nX-MSN-Messenger: a\r\nx-msn-messenger: b\r\n\r\n",
                HttpError::DuplicateHeader("X-MSN-Messenger"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 4097\r\n\r\n",
                HttpError::BodyTooLarge { limit: 4096 },
            ),
        ];
        for (wire, want) in cases {
            for step in [1, wire.len()] {
                assert_eq!(decode(wire, step), Err(want), "{}", String::from_utf8_lossy(wire));
            }
        }
    }

    #[test]
    fn both_framings_use_chunked_and_close() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n";
        assert_eq!(decode(wire, 5).unwrap(), (200, b"ok".to_vec(), true, false));
    }
}
