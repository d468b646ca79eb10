//! A strict reader of the Prometheus text format (0.0.4), for the tests: every line is
//! checked against the format's rules (and the naming conventions promtool's linter checks),
//! and the samples come back by series, so that a test can see values move.

use std::collections::{BTreeMap, HashMap, HashSet};

/// The samples of one exposition, by series (`name{a="x",b="y"}`, labels sorted).
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: BTreeMap<String, f64>,
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// The value of `name` with exactly `labels`, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples.get(&series(name, labels)).copied()
    }

    /// The value of `name` with exactly `labels`; panics, naming the series, when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no series {}", series(name, labels)))
    }
}

fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    labels.sort();
    if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", labels.join(","))
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    !s.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| format!("`{s}` is not a number")),
    }
}

/// `{a="x",b="y"}` (without the braces) into pairs, checking names and escapes.
fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\"…\": `{rest}`"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name `{name}`"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated label value in `{s}`")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in `{s}`")),
                },
                Some((_, '\n')) => return Err("a raw newline in a label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("label `{name}` twice"));
        }
        out.push((name.to_string(), value));
        rest = &after[end + 1..];
        rest = match rest.strip_prefix(',') {
            Some(r) => r,
            None if rest.is_empty() => rest,
            None => return Err(format!("expected `,` between labels, got `{rest}`")),
        };
    }
    Ok(out)
}

/// The family a sample belongs to: itself, or a histogram's, by its suffix.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram")
        {
            return base;
        }
    }
    name
}

/// Read `text`, refusing the first line that breaks the format or the conventions.
pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the exposition must end with a newline".into());
    }
    let mut out = Exposition::default();
    let mut helped = HashSet::new();
    let mut finished_families: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut buckets: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let fail = |why: String| format!("line {}: {why}: `{line}`", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (keyword, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match keyword {
                "HELP" | "TYPE" if !is_metric_name(name) => {
                    return Err(fail(format!("bad metric name `{name}`")));
                }
                "HELP" if !helped.insert(name.to_string()) => {
                    return Err(fail("a second HELP".into()));
                }
                "TYPE" => {
                    let kind = parts.next().unwrap_or("");
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(fail(format!("unknown type `{kind}`")));
                    }
                    if kind == "counter" && !name.ends_with("_total") {
                        return Err(fail("a counter's name must end in _total".into()));
                    }
                    if out
                        .types
                        .insert(name.to_string(), kind.to_string())
                        .is_some()
                    {
                        return Err(fail("a second TYPE".into()));
                    }
                    if current.as_deref() == Some(name) || finished_families.contains(name) {
                        return Err(fail("TYPE after the family's samples".into()));
                    }
                }
                _ => {}
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name_labels, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| fail("no value".into()))?;
        let value = parse_value(value).map_err(fail)?;
        let (name, labels) = match name_labels.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| fail("labels without a closing brace".into()))?;
                (name, parse_labels(inner).map_err(fail)?)
            }
            None => (name_labels, Vec::new()),
        };
        if !is_metric_name(name) {
            return Err(fail(format!("bad metric name `{name}`")));
        }
        let family = family_of(name, &out.types).to_string();
        match out.types.get(&family).map(String::as_str) {
            None => return Err(fail("a sample without a TYPE".into())),
            Some("counter") if value < 0.0 => return Err(fail("a negative counter".into())),
            _ => {}
        }
        if current.as_deref() != Some(&family) {
            if finished_families.contains(&family) {
                return Err(fail("the family's samples are not together".into()));
            }
            if let Some(done) = current.replace(family.clone()) {
                finished_families.insert(done);
            }
        }
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if name.ends_with("_bucket") && family != name {
            let le = labels
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or_else(|| fail("a bucket without `le`".into()))?;
            let rest: Vec<(&str, &str)> =
                pairs.iter().filter(|(k, _)| *k != "le").copied().collect();
            buckets
                .entry(series(&family, &rest))
                .or_default()
                .push((parse_value(&le.1).map_err(fail)?, value));
        }
        if out.samples.insert(series(name, &pairs), value).is_some() {
            return Err(fail("the same series twice".into()));
        }
    }
    for (histogram, bs) in &buckets {
        if !bs.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1) {
            return Err(format!("{histogram}: buckets not increasing"));
        }
        let count_series = histogram.replacen(
            histogram.split('{').next().unwrap_or(""),
            &format!("{}_count", histogram.split('{').next().unwrap_or("")),
            1,
        );
        match bs.last() {
            Some((le, n)) if le.is_infinite() && Some(n) == out.samples.get(&count_series) => {}
            _ => return Err(format!("{histogram}: no +Inf bucket equal to _count")),
        }
    }
    Ok(out)
}
