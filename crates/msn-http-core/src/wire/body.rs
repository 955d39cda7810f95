//! Incremental HTTP body decoding: `Content-Length`, `chunked` and close-delimited bodies, with a
//! size limit, for input cut at any byte.

use crate::error::HttpError;

/// The longest chunk-size line (with extensions) we accept, in bytes.
const MAX_CHUNK_LINE: usize = 128;
/// The most trailer bytes after the last chunk we skip before giving up.
const MAX_TRAILER_BYTES: usize = 8 * 1024;

/// How a message body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Everything until the connection closes (no length and not chunked).
    CloseDelimited,
}

/// One step of body decoding.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyStep<'a> {
    /// Body bytes, never empty.
    Data(&'a [u8]),
    /// The input is used up and the body is not complete.
    NeedMore,
    /// The body is complete; input after it belongs to the next message.
    Done,
}

#[derive(Clone, Debug)]
enum State {
    Length { remaining: u64 },
    ChunkSize { line: [u8; MAX_CHUNK_LINE], len: usize },
    ChunkData { remaining: u64 },
    ChunkDataEnd { saw_cr: bool },
    Trailer { at_line_start: bool, saw_cr: bool, total: usize },
    CloseDelimited,
    Done,
}

/// Decodes one body of a known [`BodyKind`].
#[derive(Clone, Debug)]
pub(crate) struct BodyDecoder {
    state: State,
    received: u64,
    limit: u64,
}

impl BodyDecoder {
    /// A decoder for a body of `kind` that may not exceed `limit` bytes.
    pub(crate) fn new(kind: BodyKind, limit: u64) -> Result<Self, HttpError> {
        let state = match kind {
            BodyKind::Empty | BodyKind::Length(0) => State::Done,
            BodyKind::Length(len) if len > limit => return Err(HttpError::BodyTooLarge { limit }),
            BodyKind::Length(len) => State::Length { remaining: len },
            BodyKind::Chunked => State::ChunkSize { line: [0; MAX_CHUNK_LINE], len: 0 },
            BodyKind::CloseDelimited => State::CloseDelimited,
        };
        Ok(Self { state, received: 0, limit })
    }

    /// Whether the body is complete.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Whether the body ends when the connection closes (EOF completes it).
    pub(crate) fn is_close_delimited(&self) -> bool {
        matches!(self.state, State::CloseDelimited)
    }

    /// Body bytes decoded so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Decodes from the front of `input`, advancing it past what was used.
    pub(crate) fn decode<'a>(&mut self, input: &mut &'a [u8]) -> Result<BodyStep<'a>, HttpError> {
        loop {
            if input.is_empty() && !self.is_done() {
                return Ok(BodyStep::NeedMore);
            }
            match &mut self.state {
                State::Done => return Ok(BodyStep::Done),
                State::Length { remaining } => {
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(input.len());
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::Done;
                    }
                    return Ok(self.take(input, n));
                }
                State::CloseDelimited => {
                    // Hand out what fits first, so the outcome does not depend on how the
                    // bytes were split into reads.
                    let room = self.limit.saturating_sub(self.received);
                    if room == 0 {
                        return Err(HttpError::BodyTooLarge { limit: self.limit });
                    }
                    let n = usize::try_from(room).unwrap_or(usize::MAX).min(input.len());
                    return Ok(self.take(input, n));
                }
                State::ChunkData { remaining } => {
                    let n = usize::try_from(*remaining).unwrap_or(usize::MAX).min(input.len());
                    *remaining -= n as u64;
                    if *remaining == 0 {
                        self.state = State::ChunkDataEnd { saw_cr: false };
                    }
                    return Ok(self.take(input, n));
                }
                State::ChunkSize { line, len } => {
                    let Some(size) = read_chunk_size(line, len, input)? else {
                        return Ok(BodyStep::NeedMore);
                    };
                    if size == 0 {
                        self.state =
                            State::Trailer { at_line_start: true, saw_cr: false, total: 0 };
                    } else if self.received.saturating_add(size) > self.limit {
                        return Err(HttpError::BodyTooLarge { limit: self.limit });
                    } else {
                        self.state = State::ChunkData { remaining: size };
                    }
                }
                State::ChunkDataEnd { saw_cr } => {
                    let byte = input[0];
                    *input = &input[1..];
                    match byte {
                        b'\r' if !*saw_cr => *saw_cr = true,
                        b'\n' => {
                            self.state = State::ChunkSize { line: [0; MAX_CHUNK_LINE], len: 0 }
                        }
                        _ => return Err(HttpError::InvalidChunkTerminator),
                    }
                }
                State::Trailer { at_line_start, saw_cr, total } => {
                    let byte = input[0];
                    *input = &input[1..];
                    *total += 1;
                    if *total > MAX_TRAILER_BYTES {
                        return Err(HttpError::ChunkLineTooLong);
                    }
                    match byte {
                        b'\n' if *at_line_start => self.state = State::Done,
                        b'\n' => {
                            *at_line_start = true;
                            *saw_cr = false;
                        }
                        b'\r' if *at_line_start && !*saw_cr => *saw_cr = true,
                        _ => {
                            *at_line_start = false;
                            *saw_cr = false;
                        }
                    }
                }
            }
        }
    }

    fn take<'a>(&mut self, input: &mut &'a [u8], n: usize) -> BodyStep<'a> {
        let (data, rest) = input.split_at(n);
        *input = rest;
        self.received += n as u64;
        BodyStep::Data(data)
    }
}

/// Reads a chunk-size line that may arrive in pieces; `Some(size)` once the line is complete.
fn read_chunk_size(
    line: &mut [u8; MAX_CHUNK_LINE],
    len: &mut usize,
    input: &mut &[u8],
) -> Result<Option<u64>, HttpError> {
    let Some(nl) = memchr::memchr(b'\n', input) else {
        append_line(line, len, input)?;
        *input = &[];
        return Ok(None);
    };
    let (part, rest) = input.split_at(nl + 1);
    *input = rest;
    let complete: &[u8] = if *len == 0 {
        if part.len() > MAX_CHUNK_LINE {
            return Err(HttpError::ChunkLineTooLong);
        }
        part
    } else {
        append_line(line, len, part)?;
        &line[..*len]
    };
    // httparse takes an empty size as zero; an empty size is malformed.
    if !complete.first().is_some_and(u8::is_ascii_hexdigit) {
        return Err(HttpError::InvalidChunkSize);
    }
    match httparse::parse_chunk_size(complete) {
        Ok(httparse::Status::Complete((_, size))) => Ok(Some(size)),
        _ => Err(HttpError::InvalidChunkSize),
    }
}

fn append_line(
    line: &mut [u8; MAX_CHUNK_LINE],
    len: &mut usize,
    bytes: &[u8],
) -> Result<(), HttpError> {
    let end = *len + bytes.len();
    if end > MAX_CHUNK_LINE {
        return Err(HttpError::ChunkLineTooLong);
    }
    line[*len..end].copy_from_slice(bytes);
    *len = end;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `wire` fed in pieces of `step` bytes; returns the body and whether it completed.
    fn decode(
        kind: BodyKind,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, bool, usize), HttpError> {
        let mut d = BodyDecoder::new(kind, 1000)?;
        let mut body = Vec::new();
        let mut left_over = 0;
        for piece in wire.chunks(step.max(1)) {
            let mut input = piece;
            loop {
                match d.decode(&mut input)? {
                    BodyStep::Data(data) => body.extend_from_slice(data),
                    BodyStep::NeedMore => break,
                    BodyStep::Done => {
                        left_over += input.len();
                        break;
                    }
                }
            }
        }
        Ok((body, d.is_done(), left_over))
    }

    #[test]
    fn chunked_bodies_decode_at_every_split() {
        let wire =
            b"5\r\nhello\r\n1;ext=\"x\"\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in 1..wire.len() {
            let (body, done, left) = decode(BodyKind::Chunked, wire, step).unwrap();
            assert_eq!(body, b"hello 0123456789", "step {step}");
            assert!(done);
            assert_eq!(left, 4, "step {step}");
        }
    }

    #[test]
    fn content_length_stops_at_its_end() {
        let (body, done, left) = decode(BodyKind::Length(5), b"helloVER", 3).unwrap();
        assert_eq!((body.as_slice(), done, left), (&b"hello"[..], true, 3));
    }

    #[test]
    fn close_delimited_takes_everything_and_never_completes_alone() {
        let (body, done, _) = decode(BodyKind::CloseDelimited, b"abc", 1).unwrap();
        assert_eq!((body.as_slice(), done), (&b"abc"[..], false));
    }

    #[test]
    fn limits_are_enforced_before_buffering() {
        assert_eq!(
            BodyDecoder::new(BodyKind::Length(1001), 1000).err(),
            Some(HttpError::BodyTooLarge { limit: 1000 })
        );
        assert_eq!(
            decode(BodyKind::Chunked, b"3E9\r\n", 2).err(),
            Some(HttpError::BodyTooLarge { limit: 1000 })
        );
        let long = [b'a'; 1001];
        assert_eq!(
            decode(BodyKind::CloseDelimited, &long, 100).err(),
            Some(HttpError::BodyTooLarge { limit: 1000 })
        );
    }

    #[test]
    fn bad_chunking_is_a_typed_error() {
        let cases: [(&[u8], HttpError); 6] = [
            (b"\r\n", HttpError::InvalidChunkSize),
            (b"zz\r\n", HttpError::InvalidChunkSize),
            (b"-1\r\n", HttpError::InvalidChunkSize),
            (b"10000000000000000\r\n", HttpError::InvalidChunkSize),
            (b"1\r\naXY", HttpError::InvalidChunkTerminator),
            (&[b'1'; 200], HttpError::ChunkLineTooLong),
        ];
        for (wire, want) in cases {
            for step in [1, 3, wire.len()] {
                assert_eq!(decode(BodyKind::Chunked, wire, step).err(), Some(want), "{wire:?}");
            }
        }
        let endless_trailer = [b"0\r\n".as_slice(), &[b'x'; MAX_TRAILER_BYTES + 1]].concat();
        assert_eq!(
            decode(BodyKind::Chunked, &endless_trailer, 64).err(),
            Some(HttpError::ChunkLineTooLong)
        );
    }
}
