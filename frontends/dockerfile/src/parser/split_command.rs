//! Splitting an instruction line into keyword, leading `--flags` and the
//! rest, the way BuildKit's `splitCommand`/`extractBuilderFlags` do.

use super::gostr;

/// Keyword (as written), flags, and the remaining arguments (trimmed).
pub(crate) fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let trimmed = gostr::trim_space(line);
    let mut parts = gostr::split_ws(trimmed, 2).into_iter();
    let cmd = parts.next().unwrap_or_default();
    let (args, flags) = match parts.next() {
        Some(rest) => extract_builder_flags(&rest, escape),
        None => (String::new(), Vec::new()),
    };
    (cmd, flags, gostr::trim_space(&args).to_string())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

/// Leading words that start with `--` become flags; `--` on its own ends
/// them. BuildKit walks the line byte by byte and turns every byte into a
/// rune, so non-ASCII bytes inside flags come out Latin-1 decoded; that is
/// reproduced here.
pub(crate) fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    let b = line.as_bytes();
    let esc = if escape.is_ascii() {
        Some(escape as u8)
    } else {
        None
    };
    let mut words: Vec<String> = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0usize;
    while pos <= b.len() {
        let at_end = pos == b.len();
        let ch = if at_end { 0 } else { b[pos] };

        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if gostr::is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == b.len() || b[pos + 1] != b'-' {
                return (gostr::lossy(&b[pos..]), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            // Phase is Word or Quote here.
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(std::mem::take(&mut word));
            }
            break;
        }
        if phase == Phase::Word {
            if gostr::is_space_byte(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (gostr::lossy(&b[pos..]), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if Some(ch) == esc {
                if pos + 1 == b.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = b[pos];
            }
            word.push(c as char);
            pos += 1;
        } else {
            if ch == quote {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if Some(ch) == esc {
                if pos + 1 == b.len() {
                    phase = Phase::Word;
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = b[pos];
            }
            word.push(c as char);
            pos += 1;
        }
    }
    (String::new(), words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let (cmd, flags, args) = split_command("COPY --from=a --chown=\"x y\" src dst", '\\');
        assert_eq!(cmd, "COPY");
        assert_eq!(flags, vec!["--from=a", "--chown=x y"]);
        assert_eq!(args, "src dst");
        let (_, flags, args) = split_command("COPY --a -- --b c", '\\');
        assert_eq!(flags, vec!["--a"]);
        assert_eq!(args, "--b c");
        let (_, flags, args) = split_command("CMD --doit -- [ ]", '\\');
        assert_eq!((flags, args.as_str()), (vec!["--doit".to_string()], "[ ]"));
        let (_, flags, args) = split_command("RUN --x=\u{e9}", '\\');
        assert_eq!(
            (flags, args.as_str()),
            (vec!["--x=\u{c3}\u{a9}".to_string()], "")
        );
        let (_, flags, _) = split_command("RUN --", '\\');
        assert!(flags.is_empty());
    }
}
