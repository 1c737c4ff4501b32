//! `rmhost config print`: the effective configuration with each value's source.
//!
//! TOML output is itself a valid `rmhost.toml` (loading it gives the same config); unset
//! optional values are shown as comments so every key is visible.

use super::Loaded;
use super::schema::{self, dotted};
use serde_json::{Map, Value};
use std::fmt::Write as _;
use std::str::FromStr;

/// Output format of [`render`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `rmhost.toml` with a `# source` comment per key.
    #[default]
    Toml,
    /// `{"config": {...}, "sources": {"limits.max_memory_mb": "env:MAX_MEMORY_MB", ...}}`.
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "toml" => Ok(Format::Toml),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown format {other:?} (expected toml or json)")),
        }
    }
}

/// Renders the effective configuration and its sources.
pub fn render(loaded: &Loaded, format: Format) -> String {
    let mut config = serde_json::to_value(&loaded.config).unwrap_or(Value::Null);
    redact_urls(&mut config);
    match format {
        Format::Json => {
            let sources: Map<String, Value> = loaded
                .sources
                .iter()
                .map(|(k, s)| (k.clone(), Value::String(s.tag())))
                .collect();
            let doc = serde_json::json!({ "config": config, "sources": sources });
            let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Toml => {
            let mut out = String::from(
                "# Effective rmhost configuration; each value is followed by its source.\n",
            );
            if let Value::Object(map) = &config {
                write_table(&mut out, &mut Vec::new(), map, loaded);
            }
            out
        }
    }
}

fn write_table(out: &mut String, path: &mut Vec<String>, map: &Map<String, Value>, l: &Loaded) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| {
        let mut p = path.clone();
        p.push((*k).clone());
        (map[*k].is_object(), schema::order(&p), (*k).clone())
    });
    for key in &keys {
        let value = &map[*key];
        if value.is_object() {
            continue;
        }
        path.push((*key).clone());
        let source = l.source(&dotted(path));
        let name = schema::quote_segment(key);
        let line = match value {
            Value::Null => format!("# {name} = (unset)"),
            other => format!("{name} = {}", toml_scalar(other)),
        };
        let _ = writeln!(out, "{line:<44} # {source}");
        path.pop();
    }
    for key in keys {
        let Value::Object(inner) = &map[key] else {
            continue;
        };
        path.push(key.clone());
        // A table with only sub-tables needs no header of its own (TOML implies it); an
        // empty one keeps its header so it survives a round trip.
        if inner.is_empty() || inner.values().any(|v| !v.is_object()) {
            let _ = writeln!(out, "\n[{}]", dotted(path));
        }
        write_table(out, path, inner, l);
        path.pop();
    }
}

/// A JSON scalar in TOML syntax. JSON strings are valid TOML basic strings.
fn toml_scalar(value: &Value) -> String {
    match value {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// Connection URLs may carry passwords: `config print` shows them as `***`.
fn redact_urls(v: &mut Value) {
    if let Value::Object(map) = v {
        for (k, inner) in map.iter_mut() {
            match inner {
                Value::String(url) if k == "url" || k == "ratelimit" || k == "ledger" => {
                    *url = crate::pools::redact(url)
                }
                other => redact_urls(other),
            }
        }
    }
}
