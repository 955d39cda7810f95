//! The header fields that decide how an HTTP message is framed and whether its connection
//! persists, read the same way for requests and responses.

use crate::error::{HeadFault, HttpError};

use super::HttpVersion;

/// What the framing-related header fields of one head said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FramingHeaders {
    pub(crate) content_length: Option<u64>,
    pub(crate) chunked: bool,
    pub(crate) transfer_encoding: bool,
    connection_close: bool,
    connection_keep_alive: bool,
}

impl FramingHeaders {
    /// Reads one header field if it concerns framing or persistence; other fields are ignored.
    pub(crate) fn observe(&mut self, name: &str, value: &[u8]) -> Result<(), HttpError> {
        if name.eq_ignore_ascii_case("content-length") {
            let len = parse_content_length(value)?;
            match self.content_length {
                Some(seen) if seen != len => return Err(HttpError::ConflictingContentLength),
                _ => self.content_length = Some(len),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.transfer_encoding = true;
            for coding in tokens(value) {
                if self.chunked {
                    // Nothing may follow `chunked`.
                    return Err(HttpError::UnsupportedTransferEncoding);
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    self.chunked = true;
                } else if !coding.eq_ignore_ascii_case(b"identity") {
                    return Err(HttpError::UnsupportedTransferEncoding);
                }
            }
        } else if name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("proxy-connection")
        {
            for option in tokens(value) {
                if option.eq_ignore_ascii_case(b"close") {
                    self.connection_close = true;
                } else if option.eq_ignore_ascii_case(b"keep-alive") {
                    self.connection_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-encoding")
            && tokens(value).any(|coding| !coding.eq_ignore_ascii_case(b"identity"))
        {
            return Err(HttpError::UnsupportedContentEncoding);
        }
        Ok(())
    }

    /// Whether the connection may carry another message after this one.
    pub(crate) fn keep_alive(&self, version: HttpVersion) -> bool {
        if self.connection_close {
            return false;
        }
        match version {
            HttpVersion::Http11 => true,
            HttpVersion::Http10 => self.connection_keep_alive,
        }
    }
}

/// The non-empty comma-separated tokens of a header value, trimmed.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty())
}

/// A strict decimal `Content-Length`: digits only, no sign, no list, no overflow.
fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    let digits = value.trim_ascii();
    if digits.is_empty() {
        return Err(HttpError::InvalidContentLength);
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(HttpError::InvalidContentLength);
        }
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(b - b'0')))
            .ok_or(HttpError::InvalidContentLength)
    })
}

/// Maps an `httparse` error to our own error type.
pub(crate) fn head_fault(e: httparse::Error) -> HttpError {
    let fault = match e {
        httparse::Error::HeaderName => HeadFault::HeaderName,
        httparse::Error::HeaderValue => HeadFault::HeaderValue,
        httparse::Error::NewLine => HeadFault::NewLine,
        httparse::Error::Status => HeadFault::Status,
        httparse::Error::Token => HeadFault::Token,
        httparse::Error::TooManyHeaders => return HttpError::TooManyHeaders,
        httparse::Error::Version => HeadFault::Version,
    };
    HttpError::MalformedHead(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(fields: &[(&str, &str)]) -> Result<FramingHeaders, HttpError> {
        let mut f = FramingHeaders::default();
        for (name, value) in fields {
            f.observe(name, value.as_bytes())?;
        }
        Ok(f)
    }

    #[test]
    fn content_length_is_strict() {
        assert_eq!(framing(&[("Content-Length", " 18 ")]).unwrap().content_length, Some(18));
        assert_eq!(framing(&[("content-length", "0")]).unwrap().content_length, Some(0));
        for bad in ["", "-1", "+1", "1 2", "0x10", "18446744073709551616", "5,5", "1e3"] {
            assert_eq!(
                framing(&[("Content-Length", bad)]),
                Err(HttpError::InvalidContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            framing(&[("Content-Length", "5"), ("content-length", "6")]),
            Err(HttpError::ConflictingContentLength)
        );
        assert!(framing(&[("Content-Length", "5"), ("Content-Length", "5")]).is_ok());
    }

    #[test]
    fn transfer_and_content_codings() {
        assert!(framing(&[("Transfer-Encoding", "Chunked")]).unwrap().chunked);
        assert!(framing(&[("Transfer-Encoding", "identity, chunked")]).unwrap().chunked);
        for bad in ["gzip, chunked", "chunked, identity", "deflate"] {
            assert_eq!(
                framing(&[("Transfer-Encoding", bad)]),
                Err(HttpError::UnsupportedTransferEncoding),
                "{bad}"
            );
        }
        assert_eq!(
            framing(&[("Content-Encoding", "gzip")]),
            Err(HttpError::UnsupportedContentEncoding)
        );
        assert!(framing(&[("Content-Encoding", "identity")]).is_ok());
    }

    #[test]
    fn persistence_follows_version_and_connection_options() {
        let none = framing(&[]).unwrap();
        assert!(none.keep_alive(HttpVersion::Http11));
        assert!(!none.keep_alive(HttpVersion::Http10));
        let ka = framing(&[("Proxy-Connection", "Keep-Alive")]).unwrap();
        assert!(ka.keep_alive(HttpVersion::Http10));
        let close = framing(&[("Connection", "keep-alive, Close")]).unwrap();
        assert!(!close.keep_alive(HttpVersion::Http11));
    }
}
