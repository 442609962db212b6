//! Go standard-library conversions BuildKit uses on flag and option values:
//! `strconv.ParseBool/ParseInt/ParseUint/ParseFloat`, `time.ParseDuration`,
//! `path.Base/Clean` and go-units' `RAMInBytes`. Values must be accepted and
//! rejected exactly as BuildKit does.

/// `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Why a number did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumError {
    Syntax,
    Range,
}

/// `strconv.ParseUint(s, base, bits)` for an explicit base (no prefixes,
/// no underscores, no sign).
pub(crate) fn parse_uint(s: &str, base: u32, bits: u32) -> Result<u64, NumError> {
    if s.is_empty() {
        return Err(NumError::Syntax);
    }
    let max: u64 = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let mut n: u64 = 0;
    let mut overflow = false;
    for c in s.chars() {
        let d = c.to_digit(base).ok_or(NumError::Syntax)?;
        if overflow {
            continue;
        }
        match n
            .checked_mul(base as u64)
            .and_then(|v| v.checked_add(d as u64))
        {
            Some(v) if v <= max => n = v,
            _ => overflow = true,
        }
    }
    if overflow {
        Err(NumError::Range)
    } else {
        Ok(n)
    }
}

/// `strconv.ParseInt(s, 10, bits)`.
pub(crate) fn parse_int(s: &str, bits: u32) -> Result<i64, NumError> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let un = parse_uint(digits, 10, 64);
    let cutoff: u64 = 1u64 << (bits.clamp(1, 64) - 1);
    match un {
        Err(NumError::Syntax) => Err(NumError::Syntax),
        Err(NumError::Range) => Err(NumError::Range),
        Ok(v) if !neg && v >= cutoff => Err(NumError::Range),
        Ok(v) if neg && v > cutoff => Err(NumError::Range),
        Ok(v) if neg => Ok((v as i128).wrapping_neg() as i64),
        Ok(v) => Ok(v as i64),
    }
}

/// `time.ParseDuration`, in nanoseconds. The error is Go's message.
pub(crate) fn parse_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", crate::parser::go_quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next() {
        if c == '-' || c == '+' {
            neg = c == '-';
            s = &s[1..];
        }
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = b
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(b.len());
        let mut v: u64 = 0;
        for &c in &b[..int_len] {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        // Fraction.
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let fb = s.as_bytes();
            let frac_len = fb
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(fb.len());
            let mut overflow = false;
            for &c in &fb[..frac_len] {
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(c - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = frac_len > 0;
            s = &s[frac_len..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or dot.
        let ub = s.as_bytes();
        let unit_len = ub
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(ub.len());
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                crate::parser::go_quote(orig)
            ));
        }
        let Some(u) = s.get(..unit_len) else {
            return Err(invalid());
        };
        s = &s[unit_len..];
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::parser::go_quote(u),
                    crate::parser::go_quote(orig)
                ))
            }
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// `strconv.ParseFloat(s, 64)`: decimal and hexadecimal forms, `inf`,
/// `infinity` and `nan`; `None` on a syntax error or overflow.
pub(crate) fn parse_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let v = if lower == "inf" || lower == "infinity" {
        f64::INFINITY
    } else if lower == "nan" {
        f64::NAN
    } else if let Some(hex) = lower.strip_prefix("0x") {
        parse_hex_float(hex)?
    } else {
        // Go allows underscores only after a base prefix, and Rust's parser
        // takes no words here (they were handled above).
        if !body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
        let v: f64 = body.parse().ok()?;
        if v.is_infinite() {
            return None;
        }
        v
    };
    Some(if neg { -v } else { v })
}

/// Mantissa digits with an optional point, then a mandatory `p` exponent.
fn parse_hex_float(s: &str) -> Option<f64> {
    let s = s.replace('_', "");
    let (mant, exp) = s.split_once('p')?;
    let exp: i64 = match exp.strip_prefix('+') {
        Some(e) => e.parse().ok()?,
        None => exp.parse().ok()?,
    };
    let (int_part, frac_part) = match mant.split_once('.') {
        Some((a, b)) => (a, b),
        None => (mant, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    let mut v: f64 = 0.0;
    for c in int_part.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac_part.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let exp = exp.clamp(-10_000, 10_000) as i32;
    let v = v * 2f64.powi(exp);
    if v.is_infinite() {
        return None;
    }
    Some(v)
}

/// go-units' `RAMInBytes`: `64m`, `1.5GiB`, `1024`, `2 kb`, ...
pub(crate) fn ram_in_bytes(size: &str) -> Result<i64, String> {
    let Some(sep) = size.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ') else {
        return Err(format!("invalid size: '{size}'"));
    };
    let (num, sfx) = if size.as_bytes()[sep] != b' ' {
        (&size[..=sep], &size[sep + 1..])
    } else {
        (&size[..sep], &size[sep + 1..])
    };
    let Some(mut value) = parse_float(num) else {
        return Err(format!("invalid size: '{size}'"));
    };
    if value < 0.0 {
        return Err(format!("invalid size: '{size}'"));
    }
    if sfx.is_empty() {
        return Ok(go_f64_to_i64(value));
    }
    let bad = |sfx: &str| Err(format!("invalid suffix: '{sfx}'"));
    if sfx.len() > 3 {
        return bad(sfx);
    }
    let sfx = crate::parser::go_to_lower(sfx);
    let b = sfx.as_bytes();
    if b.first() == Some(&b'b') {
        if b.len() > 1 {
            return bad(&sfx);
        }
        return Ok(go_f64_to_i64(value));
    }
    let mul: f64 = match b.first() {
        Some(b'k') => 1024.0,
        Some(b'm') => 1024.0 * 1024.0,
        Some(b'g') => 1024.0 * 1024.0 * 1024.0,
        Some(b't') => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        Some(b'p') => 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return bad(&sfx),
    };
    value *= mul;
    if (b.len() == 2 && b[1] != b'b') || (b.len() == 3 && &b[1..] != b"ib") {
        return bad(&sfx);
    }
    Ok(go_f64_to_i64(value))
}

/// Go's float64 → int64 conversion on amd64: truncation, and the
/// "integer indefinite" value for NaN and out-of-range inputs.
fn go_f64_to_i64(v: f64) -> i64 {
    // 2^63: the first float64 outside the int64 range.
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if v.is_nan() || !(-TWO_63..TWO_63).contains(&v) {
        i64::MIN
    } else {
        v as i64
    }
}

/// Go's `path.Clean`.
pub(crate) fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Base`.
pub(crate) fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_string();
    }
    match trimmed.rfind('/') {
        Some(i) => trimmed[i + 1..].to_string(),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5_000_000_000),
            ("-1.5h", -5_400_000_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("1\u{b5}s", 1000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("9223372036854775807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
        ];
        for (s, want) in ok {
            assert_eq!(parse_duration(s), Ok(*want), "{s}");
        }
        for s in [
            "",
            "5",
            "s",
            ".s",
            "1x",
            "9223372036854775808ns",
            "1..2s",
            "+",
            "3000000h",
        ] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_uint("0755", 8, 32), Ok(0o755));
        assert_eq!(parse_uint("8", 8, 32), Err(NumError::Syntax));
        assert_eq!(parse_uint("4294967296", 10, 32), Err(NumError::Range));
        assert_eq!(parse_uint("+1", 10, 32), Err(NumError::Syntax));
        assert_eq!(parse_int("-2147483648", 32), Ok(-2147483648));
        assert_eq!(parse_int("2147483648", 32), Err(NumError::Range));
        assert_eq!(parse_int("+3", 32), Ok(3));
        assert_eq!(parse_int("", 32), Err(NumError::Syntax));
    }

    #[test]
    fn sizes() {
        assert_eq!(ram_in_bytes("64m"), Ok(64 << 20));
        assert_eq!(ram_in_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(ram_in_bytes("10"), Ok(10));
        assert_eq!(ram_in_bytes("2 kb"), Ok(2048));
        assert_eq!(ram_in_bytes("0x10k"), Err("invalid size: '0x10k'".into()));
        assert_eq!(ram_in_bytes("0x1p4"), Ok(16));
        assert!(ram_in_bytes("abc").is_err());
        assert!(ram_in_bytes("1kx").is_err());
        assert!(ram_in_bytes("-1").is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(path_clean("/a/./b/../c/"), "/a/c");
        assert_eq!(path_clean("../a"), "../a");
        assert_eq!(path_clean("/.."), "/");
        assert_eq!(path_base("/run/secrets/x/"), "x");
        assert_eq!(path_base("///"), "/");
    }
}
