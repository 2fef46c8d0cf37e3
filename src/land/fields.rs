//! Typed reads of JSON fields, with errors that name the field.
//!
//! Lenient exactly where Shopify's own shapes vary (ids as GID, number or numeric
//! string; money as decimal string or number; timestamps with any UTC offset) and
//! strict everywhere else: a field of the wrong type rejects its record, which is
//! then reported with file and line instead of landing half-understood.

use serde_json::{Map, Value};

/// Why a record was not landed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

pub type FieldResult<T> = Result<T, FieldError>;

fn wrong(field: &str, expected: &str, got: &Value) -> FieldError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    FieldError { field: field.to_string(), problem: format!("expected {expected}, got {got}") }
}

pub fn missing(field: &str) -> FieldError {
    FieldError { field: field.to_string(), problem: "missing".to_string() }
}

/// A JSON object with typed accessors. Paths are dotted (`seo.title`); a null or
/// absent step anywhere gives `None`.
#[derive(Clone, Copy)]
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    pub fn of(value: &'a Value, what: &str) -> FieldResult<Self> {
        match value {
            Value::Object(map) => Ok(Fields(map)),
            other => Err(wrong(what, "an object", other)),
        }
    }

    pub fn get(&self, path: &str) -> Option<&'a Value> {
        let mut parts = path.split('.');
        let mut value = self.0.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        (!value.is_null()).then_some(value)
    }

    pub fn obj(&self, path: &str) -> FieldResult<Option<Fields<'a>>> {
        self.get(path).map(|v| Fields::of(v, path)).transpose()
    }

    pub fn array(&self, path: &str) -> FieldResult<&'a [Value]> {
        match self.get(path) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(wrong(path, "an array", other)),
        }
    }

    pub fn str(&self, path: &str) -> FieldResult<Option<String>> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong(path, "a string", other)),
        }
    }

    pub fn bool(&self, path: &str) -> FieldResult<Option<bool>> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong(path, "a boolean", other)),
        }
    }

    pub fn i64(&self, path: &str) -> FieldResult<Option<i64>> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| FieldError {
                field: path.to_string(),
                problem: format!("expected an integer, got {n}"),
            }),
            // GraphQL serializes UnsignedInt64 counts as strings.
            Some(Value::String(s)) => s.parse::<i64>().map(Some).map_err(|_| FieldError {
                field: path.to_string(),
                problem: format!("expected an integer, got {s:?}"),
            }),
            Some(other) => Err(wrong(path, "an integer", other)),
        }
    }

    /// Money: a decimal string (`"19.99"`), a number, or a Shopify `MoneyBag`
    /// (`{"shopMoney": {"amount": "19.99"}}`, also `{"amount": …}`).
    pub fn money(&self, path: &str) -> FieldResult<Option<f64>> {
        match self.get(path) {
            None => Ok(None),
            Some(value) => money_value(path, value).map(Some),
        }
    }

    /// An id as a GID (`gid://shopify/Product/12`), a number, or a numeric string.
    pub fn id(&self, path: &str) -> FieldResult<Option<i64>> {
        match self.get(path) {
            None => Ok(None),
            Some(value) => id_value(path, value).map(Some),
        }
    }

    pub fn required_id(&self, path: &str) -> FieldResult<i64> {
        self.id(path)?.ok_or_else(|| missing(path))
    }

    /// An RFC 3339 timestamp with any offset, as µs since the epoch in UTC.
    pub fn ts(&self, path: &str) -> FieldResult<Option<i64>> {
        match self.get(path) {
            None => Ok(None),
            Some(Value::String(s)) => parse_ts(s).map(Some).ok_or_else(|| FieldError {
                field: path.to_string(),
                problem: format!("not an RFC 3339 timestamp: {s:?}"),
            }),
            Some(other) => Err(wrong(path, "a timestamp string", other)),
        }
    }

    /// Tags: a JSON array of strings (GraphQL) or one comma-separated string (REST),
    /// trimmed, empties dropped.
    pub fn tags(&self, path: &str) -> FieldResult<Vec<String>> {
        let raw: Vec<String> = match self.get(path) {
            None => vec![],
            Some(Value::String(s)) => s.split(',').map(str::to_string).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| wrong(path, "strings", v)))
                .collect::<FieldResult<_>>()?,
            Some(other) => return Err(wrong(path, "a string or an array of strings", other)),
        };
        Ok(raw.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect())
    }
}

pub fn money_value(path: &str, value: &Value) -> FieldResult<f64> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| wrong(path, "a decimal", value)),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| FieldError {
            field: path.to_string(),
            problem: format!("not a decimal amount: {s:?}"),
        }),
        Value::Object(map) => {
            let inner = map.get("shopMoney").or_else(|| map.get("shop_money")).unwrap_or(value);
            match inner.get("amount") {
                Some(amount) if !amount.is_object() => money_value(path, amount),
                _ => Err(FieldError { field: path.to_string(), problem: "money without an amount".into() }),
            }
        }
        other => Err(wrong(path, "a decimal amount", other)),
    }
}

pub fn id_value(path: &str, value: &Value) -> FieldResult<i64> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_id(s),
        _ => None,
    };
    parsed.ok_or_else(|| match value {
        Value::String(s) => FieldError { field: path.to_string(), problem: format!("not an id: {s:?}") },
        other => wrong(path, "an id", other),
    })
}

/// `gid://shopify/Product/123` → 123 (a query string after the number is ignored),
/// `"123"` → 123.
pub fn parse_id(s: &str) -> Option<i64> {
    let number = match s.strip_prefix("gid://") {
        Some(rest) => rest.rsplit('/').next()?.split('?').next()?,
        None => s.trim(),
    };
    number.parse::<i64>().ok()
}

/// The type part of a GID: `gid://shopify/ProductVariant/7` → `ProductVariant`.
pub fn gid_type(s: &str) -> Option<&str> {
    let rest = s.strip_prefix("gid://")?;
    let mut parts = rest.rsplit('/');
    parts.next()?;
    parts.next()
}

pub fn parse_ts(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.timestamp_micros())
}

/// Plain text of an HTML fragment: tags stripped, common entities unescaped,
/// whitespace runs collapsed.
pub fn plain_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = unescape_entities(&text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn unescape_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &after[1..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            }?;
            Some((c, end + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &after[len..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
