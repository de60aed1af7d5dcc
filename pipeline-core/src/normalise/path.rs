//! Path expressions that point into a vendor payload: JSON Pointer (RFC 6901) plus a filter segment.
//!
//! ```text
//! path    = [ "$" ] *( "/" segment )
//! segment = token                      ; RFC 6901 reference token: a key, or an index into an array
//!         / token "[" field "=" value "]"  ; then, in that array, the first object whose `field`
//!                                          ; is the JSON string `value`
//! ```
//!
//! - `~0` and `~1` stand for `~` and `/` in tokens, fields and values, as in RFC 6901.
//! - `/obs/params[label=HR]/v` reads `v` of the first element of `/obs/params` whose `label` is
//!   `"HR"`. A segment that is only a filter (`/[label=HR]`) filters the current value itself.
//! - A leading `$` anchors the path at the document root. Without it, a path is relative to the
//!   current scope: the document, or the array element when a profile has `each`.
//! - `""` (or `$`) is the scope (or the document) itself.
//! - A key that itself contains `[` and ends with `]` cannot be addressed; no vendor we know uses one.
//!
//! Paths are parsed once, when a profile loads; resolving one allocates nothing.

use std::fmt;

use serde_json::Value;
use thiserror::Error;

/// A parsed path expression.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    anchored: bool,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
struct Segment {
    /// `None` for a filter-only segment.
    token: Option<Token>,
    filter: Option<Filter>,
}

#[derive(Debug, Clone, PartialEq)]
struct Token {
    key: String,
    /// The token read as an array index, when it is one (RFC 6901: `0` or no leading zero).
    index: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    field: String,
    value: String,
}

/// Why a path expression does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    /// The path neither is empty nor starts with `/` or `$`.
    #[error("path \"{0}\" must start with \"/\" (relative) or \"$/\" (from the document root)")]
    NoLeadingSlash(String),
    /// A `~` not followed by `0` or `1`.
    #[error("path \"{0}\" has a \"~\" not followed by 0 or 1: write \"~0\" for \"~\" and \"~1\" for \"/\"")]
    BadEscape(String),
    /// A `[...]` segment that is not `[field=value]`.
    #[error("path \"{0}\" has a filter that is not of the form [field=value]")]
    BadFilter(String),
}

impl JsonPath {
    /// Parses a path expression (see the module doc for the grammar).
    pub fn parse(text: &str) -> Result<JsonPath, PathError> {
        let (anchored, rest) = match text.strip_prefix('$') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            return Err(PathError::NoLeadingSlash(text.to_string()));
        }
        let mut segments = Vec::new();
        if !rest.is_empty() {
            for raw in rest[1..].split('/') {
                segments.push(parse_segment(raw, text)?);
            }
        }
        Ok(JsonPath { text: text.to_string(), anchored, segments })
    }

    /// Whether the path starts at the document root even inside an `each` element.
    pub fn is_anchored(&self) -> bool {
        self.anchored
    }

    /// The value the path points at: from `root` when anchored, else from `scope`. `None` when
    /// anything on the way is absent or of a shape the path cannot walk through.
    pub fn resolve<'v>(&self, root: &'v Value, scope: &'v Value) -> Option<&'v Value> {
        self.walk(root, scope, &mut |_| {})
    }

    /// Calls `seen` with every value resolving the path reads: the value it points at, and the field
    /// each filter matched on (`label` in `[label=HR]`), so both count as read by the profile.
    pub fn visit<'v>(&self, root: &'v Value, scope: &'v Value, mut seen: impl FnMut(&'v Value)) {
        if let Some(value) = self.walk(root, scope, &mut seen) {
            seen(value);
        }
    }

    fn walk<'v>(&self, root: &'v Value, scope: &'v Value, matched_on: &mut dyn FnMut(&'v Value)) -> Option<&'v Value> {
        let mut current = if self.anchored { root } else { scope };
        for segment in &self.segments {
            if let Some(token) = &segment.token {
                current = match current {
                    Value::Object(map) => map.get(&token.key)?,
                    Value::Array(items) => items.get(token.index?)?,
                    _ => return None,
                };
            }
            if let Some(filter) = &segment.filter {
                let field =
                    |item: &'v Value| item.get(&filter.field).filter(|f| f.as_str() == Some(filter.value.as_str()));
                let (item, field) = current.as_array()?.iter().find_map(|item| Some((item, field(item)?)))?;
                matched_on(field);
                current = item;
            }
        }
        Some(current)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_segment(raw: &str, whole: &str) -> Result<Segment, PathError> {
    let (token_text, filter) = match raw.find('[') {
        Some(open) if raw.ends_with(']') => {
            let inner = &raw[open + 1..raw.len() - 1];
            let (field, value) = inner
                .split_once('=')
                .filter(|(field, _)| !field.is_empty())
                .ok_or_else(|| PathError::BadFilter(whole.to_string()))?;
            let filter = Filter { field: unescape(field, whole)?, value: unescape(value, whole)? };
            (&raw[..open], Some(filter))
        }
        _ => (raw, None),
    };
    let token = if filter.is_some() && token_text.is_empty() {
        None
    } else {
        Some(Token { key: unescape(token_text, whole)?, index: array_index(token_text) })
    };
    Ok(Segment { token, filter })
}

fn unescape(s: &str, whole: &str) -> Result<String, PathError> {
    if !s.contains('~') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err(PathError::BadEscape(whole.to_string())),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

fn array_index(token: &str) -> Option<usize> {
    let canonical = token == "0" || (!token.starts_with('0') && !token.is_empty());
    if canonical && token.bytes().all(|b| b.is_ascii_digit()) { token.parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at<'v>(path: &str, doc: &'v Value) -> Option<&'v Value> {
        JsonPath::parse(path).unwrap().resolve(doc, doc)
    }

    #[test]
    fn resolves_rfc6901_pointers() {
        let doc = json!({"a": {"b": [10, 20, {"c": 3}]}, "x/y": 1, "t~": 2, "": 4});
        assert_eq!(at("", &doc), Some(&doc));
        assert_eq!(at("/a/b/1", &doc), Some(&json!(20)));
        assert_eq!(at("/a/b/2/c", &doc), Some(&json!(3)));
        assert_eq!(at("/x~1y", &doc), Some(&json!(1)));
        assert_eq!(at("/t~0", &doc), Some(&json!(2)));
        assert_eq!(at("/", &doc), Some(&json!(4)));
        assert_eq!(at("/a/b/01", &doc), None, "no leading zeros in indices");
        assert_eq!(at("/a/b/-", &doc), None);
        assert_eq!(at("/a/b/9", &doc), None);
        assert_eq!(at("/a/b/1/c", &doc), None, "cannot walk through a number");
        assert_eq!(at("/missing", &doc), None);
    }

    #[test]
    fn filters_select_the_first_matching_element() {
        let doc = json!({"obs": {"params": [
            {"label": "SPO2", "v": 96},
            {"label": "HR", "v": 72},
            {"label": "HR", "v": 99},
            {"label": 7, "v": 1},
            "not an object"
        ]}});
        assert_eq!(at("/obs/params[label=HR]/v", &doc), Some(&json!(72)));
        assert_eq!(at("/obs/params[label=SPO2]", &doc), Some(&json!({"label": "SPO2", "v": 96})));
        assert_eq!(at("/obs/params[label=RR]/v", &doc), None);
        assert_eq!(at("/obs/params[label=7]/v", &doc), None, "filters match strings only");
        assert_eq!(at("/obs[label=HR]", &doc), None, "a filter needs an array");
        let root_array = json!([{"k": "a/b", "v": 1}]);
        assert_eq!(at("/[k=a~1b]/v", &root_array), Some(&json!(1)));
    }

    #[test]
    fn anchored_paths_ignore_the_scope() {
        let doc = json!({"device": {"id": "D1"}, "batch": [{"hr": 70}]});
        let element = &doc["batch"][0];
        let relative = JsonPath::parse("/hr").unwrap();
        let anchored = JsonPath::parse("$/device/id").unwrap();
        assert!(anchored.is_anchored() && !relative.is_anchored());
        assert_eq!(relative.resolve(&doc, element), Some(&json!(70)));
        assert_eq!(anchored.resolve(&doc, element), Some(&json!("D1")));
        assert_eq!(JsonPath::parse("$").unwrap().resolve(&doc, element), Some(&doc));
    }

    #[test]
    fn refuses_malformed_paths() {
        assert_eq!(JsonPath::parse("obs/v"), Err(PathError::NoLeadingSlash("obs/v".into())));
        assert_eq!(JsonPath::parse("$obs"), Err(PathError::NoLeadingSlash("$obs".into())));
        assert_eq!(JsonPath::parse("/a~2"), Err(PathError::BadEscape("/a~2".into())));
        assert_eq!(JsonPath::parse("/a~"), Err(PathError::BadEscape("/a~".into())));
        for bad in ["/p[label]", "/p[=HR]", "/p[]"] {
            assert_eq!(JsonPath::parse(bad), Err(PathError::BadFilter(bad.into())), "{bad}");
        }
        assert_eq!(JsonPath::parse("/a/b").unwrap().to_string(), "/a/b");
    }
}
