//! The subset of TOML that Cargo.lock and the workspace's manifests use, read as written:
//! tables and arrays of tables, `key = value` with values spanning lines inside brackets,
//! basic and literal strings, comments. No TOML crate is in the lock to build it with, and the
//! plugin-input hash needs the entries as written (comments and layout left out).

use std::collections::{BTreeMap, BTreeSet};

/// One TOML table as written. Each `[[array]]` header starts a table of its own.
pub struct Table {
    /// The header without brackets and without whitespace outside quotes; "" before any.
    pub header: String,
    /// Whether the header was `[[...]]`.
    pub array: bool,
    /// `key = value`, both without comments and whitespace outside strings.
    pub entries: Vec<(String, String)>,
}

impl Table {
    pub fn get_raw(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A string value's contents, or "" when there is none.
    pub fn get(&self, key: &str) -> String {
        self.get_raw(key)
            .and_then(|v| strings_in(v).into_iter().next())
            .unwrap_or_default()
    }
}

/// Reads the TOML subset described in the module docs. Multi-line strings (`"""`) are not
/// part of it; the manifests and lock files read here have none.
pub fn parse_toml(text: &str) -> Vec<Table> {
    let mut tables = vec![Table {
        header: String::new(),
        array: false,
        entries: Vec::new(),
    }];
    // A value whose brackets are still open at the end of its line: (key, value so far).
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        let code = without_layout(line);
        if let Some((key, mut value)) = open.take() {
            value.push_str(&code);
            match bracket_depth(&value) > 0 {
                true => open = Some((key, value)),
                false => tables.last_mut().unwrap().entries.push((key, value)),
            }
            continue;
        }
        if code.is_empty() {
            continue;
        }
        if let Some(header) = code.strip_prefix("[[").and_then(|c| c.strip_suffix("]]")) {
            tables.push(Table {
                header: header.to_string(),
                array: true,
                entries: Vec::new(),
            });
        } else if let Some(header) = code.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
            tables.push(Table {
                header: header.to_string(),
                array: false,
                entries: Vec::new(),
            });
        } else if let Some(at) = outside_strings(&code)
            .find(|&(_, c)| c == '=')
            .map(|(i, _)| i)
        {
            let (key, value) = (code[..at].to_string(), code[at + 1..].to_string());
            match bracket_depth(&value) > 0 {
                true => open = Some((key, value)),
                false => tables.last_mut().unwrap().entries.push((key, value)),
            }
        }
    }
    if let Some(entry) = open {
        tables.last_mut().unwrap().entries.push(entry);
    }
    tables
}

/// The characters of `code` outside strings, with their byte offsets.
fn outside_strings(code: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    code.char_indices().filter(move |&(_, c)| {
        match quote {
            Some('"') if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None => return true,
        }
        false
    })
}

/// The line without its comment and without whitespace outside strings.
fn without_layout(line: &str) -> String {
    let outside: BTreeMap<usize, char> = outside_strings(line).collect();
    let mut kept = String::new();
    for (i, c) in line.char_indices() {
        match outside.get(&i).copied() {
            Some('#') => break,
            Some(c) if c.is_whitespace() => {}
            _ => kept.push(c),
        }
    }
    kept
}

/// Open `[` and `{` minus closed ones, outside strings.
fn bracket_depth(value: &str) -> i32 {
    outside_strings(value)
        .map(|(_, c)| match c {
            '[' | '{' => 1,
            ']' | '}' => -1,
            _ => 0,
        })
        .sum()
}

/// The contents of the basic and literal strings in a value, in order (escapes as written).
pub fn strings_in(value: &str) -> Vec<String> {
    let outside: BTreeSet<usize> = outside_strings(value).map(|(i, _)| i).collect();
    let mut strings = Vec::new();
    let mut current: Option<String> = None;
    for (i, c) in value.char_indices() {
        match (&mut current, outside.contains(&i)) {
            (None, false) => current = Some(String::new()), // the opening quote
            (Some(s), false) => s.push(c),
            (Some(_), true) => {
                let mut s = current.take().unwrap();
                s.pop(); // the closing quote
                strings.push(s);
            }
            (None, true) => {}
        }
    }
    if let Some(mut s) = current {
        s.pop();
        strings.push(s);
    }
    strings
}
