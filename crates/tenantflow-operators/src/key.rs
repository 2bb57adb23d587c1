//! A tenant's `companyID` as the tenant table keeps it: inline when it is short (W1's
//! `c-123456`, a UUID's 36 characters do not fit), so that a key costs no allocation
//! of its own and a lookup follows no pointer to compare it.

/// Bytes of a key kept inline.
const INLINE: usize = 22;

/// A `companyID`, inline up to 22 bytes, on the heap beyond. 24 bytes either way.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantKey(Repr);

#[derive(Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl TenantKey {
    /// The key of `id`.
    pub fn new(id: &str) -> Self {
        let repr = match u8::try_from(id.len()) {
            Ok(len) if id.len() <= INLINE => {
                let mut bytes = [0; INLINE];
                bytes[..id.len()].copy_from_slice(id.as_bytes());
                Repr::Inline { len, bytes }
            }
            _ => Repr::Heap(id.into()),
        };
        Self(repr)
    }

    /// The key's bytes (UTF-8).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(id) => id.as_bytes(),
        }
    }

    /// The key.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Copied from a `&str` whole: always UTF-8, so never the empty fallback.
            Repr::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Repr::Heap(id) => id,
        }
    }
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_keys_are_inline_and_every_key_reads_back() {
        assert_eq!(std::mem::size_of::<TenantKey>(), 24);
        for id in [
            "",
            "c-123456",
            "ünïcödé-tenant",
            "exactly-22-bytes-long!",
            "twenty-three bytes long",
            "7d444840-9dc0-11d1-b245-5ffdce74fad2",
        ] {
            let key = TenantKey::new(id);
            assert_eq!(key.as_str(), id);
            assert_eq!(key.as_bytes(), id.as_bytes());
            assert_eq!(
                matches!(key.0, Repr::Inline { .. }),
                id.len() <= INLINE,
                "{id}"
            );
        }
        assert_ne!(TenantKey::new("a"), TenantKey::new("a\0"));
    }
}
