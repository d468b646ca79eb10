//! Reading `§` labels: one label, a chain of them (ranges and lists), a markdown file's
//! headings.

use std::collections::BTreeSet;

/// A `§` label at the start of `s`: `5`, `6.3`, `A7`, `B4.1` or a lone `A`, followed by
/// something that cannot continue a label. Returns the label and its length in bytes.
pub fn label_at(s: &str) -> Option<(String, usize)> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && b[i].is_ascii_uppercase() {
        i += 1;
    }
    let letter = i;
    let digits = |i: usize| {
        let mut j = i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let j = digits(i);
    if j == i && letter == 0 {
        return None;
    }
    i = j;
    if j > letter {
        // .N sub-sections
        while i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            i = digits(i + 1);
        }
    }
    if i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        return None;
    }
    Some((s[..i].to_string(), i))
}

/// The labels of a markdown file's headings (`## §6.3 The target` → `6.3`).
pub fn headings(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with('#')) {
        for (at, _) in line.match_indices('§') {
            if let Some((label, _)) = label_at(&line[at + '§'.len_utf8()..]) {
                out.insert(label);
            }
        }
    }
    out
}

/// A chain of labels starting at the `§` at byte `at`: `§A2–A7`, `§1, §4, §6.3`, `§B1 and §B3`.
/// Returns the labels and the byte offsets of every `§` it consumed.
pub fn chain(text: &str, at: usize) -> (Vec<String>, Vec<usize>) {
    let sect = '§'.len_utf8();
    let (mut labels, mut consumed) = (Vec::new(), vec![at]);
    let Some((first, len)) = label_at(&text[at + sect..]) else {
        return (labels, consumed);
    };
    labels.push(first);
    let mut pos = at + sect + len;
    loop {
        let rest = &text[pos..];
        // A range: `–A7`, `-7`, `–§A9`.
        let dash = ["–", "-"].iter().find(|d| rest.starts_with(**d));
        if let Some(d) = dash {
            let mut p = pos + d.len();
            let with_sect = text[p..].starts_with('§');
            if with_sect {
                p += sect;
            }
            if let Some((label, len)) = label_at(&text[p..]) {
                if with_sect {
                    consumed.push(p - sect);
                }
                labels.push(label);
                pos = p + len;
                continue;
            }
            break;
        }
        // A list: `, §4`, ` and §B3`, `, and §2`, also across a line break (and the next
        // line's comment marker).
        if let Some(p) = list_separator(rest).map(|n| pos + n)
            && let Some((label, len)) = label_at(&text[p..])
        {
            consumed.push(p - sect);
            labels.push(label);
            pos = p + len;
            continue;
        }
        break;
    }
    (labels, consumed)
}

/// The length of a list separator before the next `§` label (`, §`, ` and §`, `,\n//! §`),
/// up to and including the `§`.
fn list_separator(rest: &str) -> Option<usize> {
    let mut s = rest;
    for word in [",", " and", " or"] {
        if let Some(after) = s.strip_prefix(word) {
            s = after;
            break;
        }
    }
    if s.len() == rest.len() {
        return None;
    }
    loop {
        let before = s.len();
        s = s.trim_start();
        for marker in ["//!", "///", "//", "#", "*"] {
            if let Some(after) = s.strip_prefix(marker) {
                s = after;
                break;
            }
        }
        for word in ["and ", "or "] {
            if let Some(after) = s.strip_prefix(word) {
                s = after;
            }
        }
        if s.len() == before {
            break;
        }
    }
    s.strip_prefix('§').map(|after| rest.len() - after.len())
}
