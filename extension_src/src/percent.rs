//! Percent-decoding (RFC 3986), for the two places that read escaped text from a caller: the local
//! API's query and path, and the Runtime API paths the proxy classifies.

use std::borrow::Cow;

/// Why text did not decode.
#[derive(Debug, PartialEq, Eq)]
pub enum Undecodable {
    /// A `%` at this byte offset is not followed by two hex digits.
    BadEscape(usize),
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

/// `%XX` escapes decoded (and `+` as a space when `plus_is_space`, as in a query); borrowed when
/// there is nothing to decode.
pub fn decode(s: &str, plus_is_space: bool) -> Result<Cow<'_, str>, Undecodable> {
    if !s.bytes().any(|b| b == b'%' || (plus_is_space && b == b'+')) {
        return Ok(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let byte = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| Some(hex_digit(hex[0])? << 4 | hex_digit(hex[1])?))
                    .ok_or(Undecodable::BadEscape(i))?;
                out.push(byte);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| Undecodable::NotUtf8)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_refuses_what_is_not_text() {
        assert!(matches!(decode("plain", true), Ok(Cow::Borrowed("plain"))));
        assert_eq!(decode("a%2Fb%2fc+d", true).as_deref(), Ok("a/b/c d"));
        assert_eq!(decode("a+b", false).as_deref(), Ok("a+b"));
        assert_eq!(decode("%C3%A9", false).as_deref(), Ok("é"));
        assert_eq!(decode("ab%zz", false), Err(Undecodable::BadEscape(2)));
        assert_eq!(decode("ab%4", false), Err(Undecodable::BadEscape(2)));
        assert_eq!(decode("%ff", false), Err(Undecodable::NotUtf8));
    }
}
