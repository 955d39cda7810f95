//! The `X-MSN-Messenger` parser: a parse keeps its promises and renders back to itself.

use msn_http_core::error::MessengerHeaderError;
use msn_http_core::wire::{MAX_SESSION_ID_LEN, MessengerHeader, parse_messenger_header};

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parses a header value and checks what a successful parse promises, including that the
/// canonical rendering of the result parses back to it.
pub(crate) fn check_messenger(value: &[u8]) -> Result<MessengerHeader<'_>, MessengerHeaderError> {
    let parsed = parse_messenger_header(value);
    if let Ok(h) = parsed {
        assert!(h.session_id.is_some() || h.session_close);
        if let Some(id) = h.session_id {
            assert!(!id.is_empty() && id.len() <= MAX_SESSION_ID_LEN);
            assert!(id.bytes().all(|b| b.is_ascii_graphic() && b != b';'), "{id:?}");
        }
        if let Some(gw) = h.gateway {
            assert!(!gw.contains(';'));
            assert!(!gw.bytes().next().is_some_and(is_space), "leading space in {gw:?}");
            assert!(!gw.bytes().last().is_some_and(is_space), "trailing space in {gw:?}");
        }
        let mut canonical = Vec::new();
        if let Some(id) = h.session_id {
            canonical.extend_from_slice(b"SessionID=");
            canonical.extend_from_slice(id.as_bytes());
        }
        if let Some(gw) = h.gateway {
            canonical.extend_from_slice(b"; GW-IP=");
            canonical.extend_from_slice(gw.as_bytes());
        }
        if h.session_close {
            canonical.extend_from_slice(b"; Session=close");
        }
        assert_eq!(parse_messenger_header(&canonical), Ok(h), "canonical form differs");
    }
    parsed
}

/// An `X-MSN-Messenger` value: a parse keeps its promises, and spacing after `;` changes
/// nothing.
pub fn messenger_header(data: &[u8]) {
    let parsed = check_messenger(data);
    let mut spaced = vec![b' '];
    for &b in data {
        spaced.push(b);
        if b == b';' {
            spaced.extend_from_slice(b" \t");
        }
    }
    spaced.push(b' ');
    assert_eq!(parse_messenger_header(&spaced), parsed, "spacing changed the meaning");
}
