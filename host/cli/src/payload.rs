//! Showing a datagram's payload safely on a terminal.
//!
//! Payloads are opaque bytes: never assume UTF-8. [`show`] renders them as a quoted,
//! escaped string that is always printable and on one line: valid UTF-8 text stays as it is
//! (except `"`, `\` and control characters, which are escaped), every other byte shows as
//! `\xNN`, and a long payload is cut after a number of characters with a note of how many
//! bytes were left out.
//!
//! | bytes | shown |
//! | --- | --- |
//! | `hello world!` | `"hello world!"` |
//! | `caf\xc3\xa9 \xff\n` | `"café \xff\n"` |
//! | `abcdef`, cut at 3 | `"abc"… (3 more bytes)` |

use std::fmt::Write;

/// How many characters of a payload the CLI shows by default.
pub const DEFAULT_MAX_CHARS: usize = 64;

/// The escaped text of `head` (the first bytes of a `len`-byte payload), at most
/// `max_chars` source characters, without quotes; and whether anything was left out.
pub fn escape(head: &[u8], len: usize, max_chars: usize) -> (String, bool) {
    let mut out = String::with_capacity(head.len().min(max_chars) + 2);
    let mut shown = 0usize;
    let mut used = 0usize;
    'outer: for chunk in head.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == max_chars {
                break 'outer;
            }
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\0' => out.push_str("\\0"),
                c if (c as u32) < 0x80 && c.is_ascii_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                // Other control and invisible formatting characters (e.g. U+202E, which
                // reverses the rest of the line) would mislead the reader.
                c if c.is_control() || is_format_char(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
            shown += 1;
            used += c.len_utf8();
        }
        for &b in chunk.invalid() {
            if shown == max_chars {
                break 'outer;
            }
            let _ = write!(out, "\\x{b:02x}");
            shown += 1;
            used += 1;
        }
    }
    (out, used < len)
}

/// A one-line, quoted, escaped rendering of a `len`-byte payload whose first bytes are
/// `head`, cut after `max_chars` characters (see the [module docs](self)).
pub fn show(head: &[u8], len: usize, max_chars: usize) -> String {
    let (text, cut) = escape(head, len, max_chars);
    if cut {
        let used = used_bytes(head, max_chars);
        format!("\"{text}\"… ({} more bytes)", len.saturating_sub(used))
    } else {
        format!("\"{text}\"")
    }
}

/// How many bytes of `head` the first `max_chars` characters of [`escape`] cover.
fn used_bytes(head: &[u8], max_chars: usize) -> usize {
    let mut shown = 0usize;
    let mut used = 0usize;
    for chunk in head.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown == max_chars {
                return used;
            }
            shown += 1;
            used += c.len_utf8();
        }
        for _ in chunk.invalid() {
            if shown == max_chars {
                return used;
            }
            shown += 1;
            used += 1;
        }
    }
    used
}

/// Unicode "format" characters (category Cf) that change how the rest of a line displays.
fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x061C | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2064
        | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_shown_quoted_and_unchanged() {
        assert_eq!(show(b"hello world!", 12, 64), "\"hello world!\"");
        assert_eq!(show(b"", 0, 64), "\"\"");
    }

    #[test]
    fn quotes_backslashes_and_controls_are_escaped() {
        assert_eq!(
            show(b"a\"b\\c\nd\te\x1b[31m\x7f\0", 16, 64),
            r#""a\"b\\c\nd\te\x1b[31m\x7f\0""#
        );
    }

    #[test]
    fn invalid_utf8_bytes_show_as_hex_and_valid_text_stays() {
        assert_eq!(show(b"\xff\xfeok\xc3\xa9", 6, 64), r#""\xff\xfeoké""#);
        // A cut-off multibyte sequence at the end is invalid, not lost.
        assert_eq!(show(b"\xe2\x82", 2, 64), r#""\xe2\x82""#);
    }

    #[test]
    fn direction_overrides_and_c1_controls_are_escaped() {
        assert_eq!(
            show("a\u{202e}b\u{85}".as_bytes(), 7, 64),
            r#""a\u{202e}b\u{85}""#
        );
    }

    #[test]
    fn long_payloads_are_cut_with_the_rest_counted() {
        assert_eq!(show(b"abcdef", 6, 3), "\"abc\"… (3 more bytes)");
        assert_eq!(show("ééé".as_bytes(), 6, 2), "\"éé\"… (2 more bytes)");
        assert_eq!(show(b"\xff\xff\xff", 3, 1), "\"\\xff\"… (2 more bytes)");
    }

    #[test]
    fn a_head_shorter_than_the_datagram_counts_as_cut() {
        // Only 4 of 65507 bytes were kept by the receiver.
        assert_eq!(show(b"abcd", 65507, 64), "\"abcd\"… (65503 more bytes)");
    }

    #[test]
    fn output_is_always_one_line() {
        let all: Vec<u8> = (0..=255).collect();
        let shown = show(&all, all.len(), 1000);
        assert!(!shown.contains('\n') && !shown.contains('\r'));
        assert!(shown.chars().all(|c| !c.is_control()));
    }
}
