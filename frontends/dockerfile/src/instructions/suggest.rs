//! "Did you mean ...?" suggestions, with BuildKit's rules: the closest
//! option within an edit distance of 2 (Levenshtein over characters), none
//! when the value matches an option exactly.

use crate::parser::{go_to_lower, go_to_upper};

/// Levenshtein distance over chars (unit costs).
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Common prefix and suffix do not change the distance.
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    if a.is_empty() {
        return b.len();
    }
    if b.is_empty() {
        return a.len();
    }
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let up = row[j + 1];
            let cost = usize::from(ca != cb);
            row[j + 1] = (diag + cost).min(up + 1).min(row[j] + 1);
            diag = up;
        }
    }
    row[b.len()]
}

/// The option closest to `val`, if any is close enough. Options are tried
/// in the order given (BuildKit iterates a Go map, so ties are broken
/// arbitrarily there; here the first option wins).
pub(crate) fn search(val: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    // Values far longer than every option cannot be within distance 2.
    let longest = options.iter().map(|o| o.chars().count()).max().unwrap_or(0);
    if val.len() > 4 * (longest + 3) {
        return None;
    }
    let val_cmp = if case_sensitive {
        val.to_string()
    } else {
        go_to_lower(val)
    };
    let mut best: Option<String> = None;
    let mut min = 3;
    for opt in options {
        let opt_cmp = if case_sensitive {
            opt.to_string()
        } else {
            go_to_lower(opt)
        };
        if val_cmp == opt_cmp {
            return None;
        }
        let d = distance(&val_cmp, &opt_cmp);
        if d < min {
            min = d;
            best = Some(if case_sensitive {
                opt_cmp
            } else {
                match_case(&opt_cmp, val)
            });
        }
    }
    best
}

fn match_case(val: &str, orig: &str) -> String {
    if orig == go_to_lower(orig) {
        return go_to_lower(val);
    }
    if orig == go_to_upper(orig) {
        return go_to_upper(val);
    }
    val.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levenshtein() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("flaw", "lawn"), 2);
        assert_eq!(distance("run", "run"), 0);
    }

    #[test]
    fn suggestions() {
        let opts = ["FROM", "RUN", "COPY"];
        assert_eq!(search("FORM", &opts, false).as_deref(), Some("FROM"));
        assert_eq!(search("form", &opts, false).as_deref(), Some("from"));
        assert_eq!(search("Cpy", &opts, false).as_deref(), Some("copy"));
        assert_eq!(search("xyzzy", &opts, false), None);
        assert_eq!(search("run", &opts, false), None);
        assert_eq!(
            search("lnk", &["link", "from"], true).as_deref(),
            Some("link")
        );
    }
}
