//! Accumulating an HTTP head that may arrive in pieces, bounded, parsing it in place when it
//! arrives whole. Shared by the request and response decoders.

/// The bytes of a head received so far, when it did not arrive in one piece.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeadBuffer {
    buf: Vec<u8>,
}

impl HeadBuffer {
    /// Reads a head from the front of `input`, advancing it past what the head used.
    ///
    /// `parse` is given the head bytes received so far and returns the head's length once it
    /// is complete; `too_large` builds the error when `limit` bytes hold no complete head.
    /// Returns `true` once a head is complete. Never buffers more than `limit` bytes, and
    /// re-parses buffered bytes only when a newline arrived (a head can end no other way).
    pub(crate) fn read<E>(
        &mut self,
        input: &mut &[u8],
        limit: usize,
        mut parse: impl FnMut(&[u8]) -> Result<Option<usize>, E>,
        too_large: impl FnOnce(&[u8]) -> E,
    ) -> Result<bool, E> {
        if self.buf.is_empty() {
            let window = &input[..input.len().min(limit)];
            if let Some(len) = parse(window)? {
                *input = &input[len..];
                return Ok(true);
            }
            if window.len() >= limit {
                return Err(too_large(window));
            }
            self.buf.extend_from_slice(window);
            *input = &input[window.len()..];
            return Ok(false);
        }
        let before = self.buf.len();
        let take = input.len().min(limit.saturating_sub(before));
        let fresh = &input[..take];
        self.buf.extend_from_slice(fresh);
        let parsed = match memchr::memchr(b'\n', fresh) {
            Some(_) => parse(&self.buf)?,
            None => None,
        };
        match parsed {
            Some(len) => {
                *input = &input[len - before..];
                self.buf.clear();
                Ok(true)
            }
            None if self.buf.len() >= limit => Err(too_large(&self.buf)),
            None => {
                *input = &input[take..];
                Ok(false)
            }
        }
    }

    /// Forgets a partial head; with `shrink_above`, also frees a buffer grown past that size.
    pub(crate) fn clear(&mut self, shrink_above: Option<usize>) {
        self.buf.clear();
        if shrink_above.is_some_and(|max| self.buf.capacity() > max) {
            self.buf = Vec::new();
        }
    }

    /// Bytes of a partial head held.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Heap bytes held.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}
