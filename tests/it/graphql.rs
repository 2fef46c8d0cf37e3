//! A small GraphQL reader for the Admin API fake: enough of the language to parse
//! the documents the fetcher sends (fields, aliases, arguments, variables, inline
//! fragments), Shopify's bulk-query validator with its messages, its calculated
//! query cost, and the projection of stored records onto a selection.
//!
//! The fake's schema knowledge is what these rules need and no more: which object
//! fields are lists ([`LIST_FIELDS`]), and that a field selecting `edges` or
//! `nodes` is a connection.

use serde_json::{json, Map, Value as Json};

/// Object fields of the Admin API that are plain lists (not connections) among
/// those the fetcher selects.
pub const LIST_FIELDS: &[&str] = &["refunds", "options", "rules"];

/// Shopify's single-query cost limit.
pub const MAX_COST: u64 = 1000;

/// Largest page a connection serves.
pub const MAX_PAGE: u64 = 250;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Var(String),
    Name(String),
    List(Vec<Value>),
}

#[derive(Debug, Clone)]
pub struct Field {
    pub name: String,
    pub args: Vec<(String, Value)>,
    pub selections: Vec<Selection>,
}

#[derive(Debug, Clone)]
pub enum Selection {
    Field(Field),
    Fragment {
        /// The type condition (`... on Order`); the fake serves one type per query.
        #[allow(dead_code)]
        on: String,
        selections: Vec<Selection>,
    },
}

/// An operation: `query` or `mutation`, and its top-level selections.
#[derive(Debug, Clone)]
pub struct Document {
    pub operation: String,
    pub selections: Vec<Selection>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Punct(char),
    Spread,
    Name(String),
    Str(String),
    Int(i64),
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() || c == ',' => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '{' | '}' | '(' | ')' | ':' | '[' | ']' | '!' | '$' | '=' | '@' => {
                out.push(Token::Punct(c));
                i += 1;
            }
            '.' if chars.get(i + 1) == Some(&'.') && chars.get(i + 2) == Some(&'.') => {
                out.push(Token::Spread);
                i += 3;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                        s.push(match chars[i] {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    } else {
                        s.push(chars[i]);
                    }
                    i += 1;
                }
                if i == chars.len() {
                    return Err("unterminated string".into());
                }
                i += 1;
                out.push(Token::Str(s));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Token::Int(s.parse().map_err(|_| format!("bad number {s}"))?));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Token::Name(chars[start..i].iter().collect()));
            }
            other => return Err(format!("Parse error on \"{other}\"")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Result<Token, String> {
        let t = self.tokens.get(self.at).cloned().ok_or("Parse error: unexpected end of document")?;
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.next()? {
            Token::Punct(p) if p == c => Ok(()),
            other => Err(format!("Parse error: expected {c}, found {other:?}")),
        }
    }

    fn name(&mut self) -> Result<String, String> {
        match self.next()? {
            Token::Name(n) => Ok(n),
            other => Err(format!("Parse error: expected a name, found {other:?}")),
        }
    }

    fn document(&mut self) -> Result<Document, String> {
        let mut operation = "query".to_string();
        if let Some(Token::Name(n)) = self.peek() {
            operation = n.clone();
            self.at += 1;
            if let Some(Token::Name(_)) = self.peek() {
                self.at += 1;
            }
            if self.peek() == Some(&Token::Punct('(')) {
                // Variable definitions: skipped to the matching parenthesis.
                let mut depth = 0;
                loop {
                    match self.next()? {
                        Token::Punct('(') => depth += 1,
                        Token::Punct(')') => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let selections = self.selection_set()?;
        if self.at != self.tokens.len() {
            return Err("Parse error: text after the document".into());
        }
        Ok(Document { operation, selections })
    }

    fn selection_set(&mut self) -> Result<Vec<Selection>, String> {
        self.expect('{')?;
        let mut out = vec![];
        while self.peek() != Some(&Token::Punct('}')) {
            if self.peek() == Some(&Token::Spread) {
                self.at += 1;
                if self.name()? != "on" {
                    return Err("Parse error: only inline fragments are supported".into());
                }
                let on = self.name()?;
                out.push(Selection::Fragment { on, selections: self.selection_set()? });
                continue;
            }
            let mut name = self.name()?;
            if self.peek() == Some(&Token::Punct(':')) {
                // An alias: the field is the name after it.
                self.at += 1;
                name = self.name()?;
            }
            let mut args = vec![];
            if self.peek() == Some(&Token::Punct('(')) {
                self.at += 1;
                while self.peek() != Some(&Token::Punct(')')) {
                    let arg = self.name()?;
                    self.expect(':')?;
                    args.push((arg, self.value()?));
                }
                self.at += 1;
            }
            let selections = if self.peek() == Some(&Token::Punct('{')) { self.selection_set()? } else { vec![] };
            out.push(Selection::Field(Field { name, args, selections }));
        }
        self.at += 1;
        Ok(out)
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.next()? {
            Token::Str(s) => Ok(Value::Str(s)),
            Token::Int(n) => Ok(Value::Int(n)),
            Token::Name(n) => Ok(Value::Name(n)),
            Token::Punct('$') => Ok(Value::Var(self.name()?)),
            Token::Punct('[') => {
                let mut items = vec![];
                while self.peek() != Some(&Token::Punct(']')) {
                    items.push(self.value()?);
                }
                self.at += 1;
                Ok(Value::List(items))
            }
            other => Err(format!("Parse error: unexpected {other:?} in an argument")),
        }
    }
}

pub fn parse(text: &str) -> Result<Document, String> {
    Parser { tokens: tokens(text)?, at: 0 }.document()
}

impl Field {
    pub fn arg(&self, name: &str, variables: &Json) -> Option<Json> {
        let (_, v) = self.args.iter().find(|(n, _)| n == name)?;
        Some(resolve(v, variables))
    }

    /// The selections of the objects a connection holds (`edges { node { … } }`
    /// or `nodes { … }`); `None` when the field is not a connection.
    pub fn connection_node(&self) -> Option<&[Selection]> {
        for s in &self.selections {
            if let Selection::Field(f) = s {
                if f.name == "nodes" {
                    return Some(&f.selections);
                }
                if f.name == "edges" {
                    return f.fields().find(|n| n.name == "node").map(|n| n.selections.as_slice());
                }
            }
        }
        None
    }

    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        fields_of(&self.selections)
    }
}

/// The fields of a selection set, inline fragments flattened.
pub fn fields_of(selections: &[Selection]) -> impl Iterator<Item = &Field> {
    let mut out = vec![];
    fn walk<'a>(selections: &'a [Selection], out: &mut Vec<&'a Field>) {
        for s in selections {
            match s {
                Selection::Field(f) => out.push(f),
                Selection::Fragment { selections, .. } => walk(selections, out),
            }
        }
    }
    walk(selections, &mut out);
    out.into_iter()
}

fn resolve(v: &Value, variables: &Json) -> Json {
    match v {
        Value::Str(s) => json!(s),
        Value::Int(n) => json!(n),
        Value::Name(n) if n == "true" => json!(true),
        Value::Name(n) if n == "false" => json!(false),
        Value::Name(n) if n == "null" => Json::Null,
        Value::Name(n) => json!(n),
        Value::Var(name) => variables.get(name).cloned().unwrap_or(Json::Null),
        Value::List(items) => Json::Array(items.iter().map(|i| resolve(i, variables)).collect()),
    }
}

/// Shopify's bulk-query validator: the messages it answers with in `userErrors`.
pub fn validate_bulk(doc: &Document) -> Result<(), String> {
    let top: Vec<&Field> = fields_of(&doc.selections).collect();
    if top.iter().any(|f| f.name == "node" || f.name == "nodes") {
        return Err("Bulk queries cannot contain a top level `node` or `nodes` field.".into());
    }
    if top.len() != 1 {
        return Err("Bulk queries must contain exactly one top level field.".into());
    }
    let mut connections = 0;
    walk_bulk(&doc.selections, 0, false, &mut connections)?;
    if connections == 0 {
        return Err("Bulk queries must contain at least one connection.".into());
    }
    if connections > 5 {
        return Err(format!("Bulk queries cannot contain more than 5 connections. This query contains {connections}."));
    }
    Ok(())
}

fn walk_bulk(selections: &[Selection], depth: usize, in_list: bool, connections: &mut usize) -> Result<(), String> {
    for f in fields_of(selections) {
        match f.connection_node() {
            Some(node) => {
                if in_list {
                    return Err("Queries that contain a connection field within a list field are not currently supported.".into());
                }
                *connections += 1;
                if depth + 1 > 2 {
                    return Err("Bulk queries cannot contain connections with a nesting depth greater than 2.".into());
                }
                let nested: Vec<&Field> = fields_of(node).filter(|c| c.connection_node().is_some()).collect();
                if !nested.is_empty() && !fields_of(node).any(|c| c.name == "id") {
                    let names: Vec<&str> = nested.iter().map(|c| c.name.as_str()).collect();
                    return Err(format!("The parent 'node' field for a nested connection must select the 'id' field. Connection fields without 'id': {}.", names.join(", ")));
                }
                walk_bulk(node, depth + 1, false, connections)?;
            }
            None => walk_bulk(&f.selections, depth, in_list || LIST_FIELDS.contains(&f.name.as_str()), connections)?,
        }
    }
    Ok(())
}

/// The requested cost of a document, as Shopify calculates it: scalars 0,
/// objects 1, connections 2 + `first` × the cost of one node, `nodes(ids:)` one
/// node per id, a mutation 10. A plain list is costed as one element (its size is
/// not known before it runs).
pub fn cost(doc: &Document, variables: &Json) -> u64 {
    if doc.operation == "mutation" {
        return 10;
    }
    fields_of(&doc.selections).map(|f| field_cost(f, variables)).sum()
}

fn field_cost(f: &Field, variables: &Json) -> u64 {
    if f.selections.is_empty() {
        return 0;
    }
    let children = |s: &[Selection]| -> u64 { fields_of(s).map(|c| field_cost(c, variables)).sum() };
    if let Some(node) = f.connection_node() {
        let first = f.arg("first", variables).and_then(|v| v.as_u64()).unwrap_or(0);
        let page_info = fields_of(&f.selections).filter(|c| c.name == "pageInfo").map(|c| field_cost(c, variables)).sum::<u64>();
        return 2 + first * (1 + children(node)) + page_info;
    }
    if f.name == "nodes" {
        let ids = f.arg("ids", variables).and_then(|v| v.as_array().map(Vec::len)).unwrap_or(0) as u64;
        return ids * (1 + children(&f.selections));
    }
    1 + children(&f.selections)
}

/// `value` (a stored record) cut to `selections`: selected scalars and objects as
/// stored (null when absent), lists element by element, connections paged by
/// `first`/`after` with their `pageInfo`. Nested connections of a bulk root are
/// not here (they are child lines): pass `with_connections = false`.
pub fn project(value: &Json, selections: &[Selection], variables: &Json, with_connections: bool) -> Result<Json, String> {
    let mut out = Map::new();
    for f in fields_of(selections) {
        let stored = value.get(&f.name).cloned().unwrap_or(Json::Null);
        let projected = if f.selections.is_empty() {
            stored
        } else if f.connection_node().is_some() {
            if !with_connections {
                continue;
            }
            page(f, &stored, variables)?
        } else {
            match stored {
                Json::Array(items) => Json::Array(items.iter().map(|i| project(i, &f.selections, variables, with_connections)).collect::<Result<_, _>>()?),
                Json::Null => Json::Null,
                v => project(&v, &f.selections, variables, with_connections)?,
            }
        };
        out.insert(f.name.clone(), projected);
    }
    Ok(Json::Object(out))
}

/// One page of a stored connection (`{"nodes": [...]}` or `{"edges": [{"node": …}]}`).
fn page(f: &Field, stored: &Json, variables: &Json) -> Result<Json, String> {
    let all: Vec<Json> = match (stored.get("nodes"), stored.get("edges")) {
        (Some(Json::Array(n)), _) => n.clone(),
        (_, Some(Json::Array(e))) => e.iter().map(|e| e["node"].clone()).collect(),
        _ => vec![],
    };
    let first = f.arg("first", variables).and_then(|v| v.as_u64()).ok_or(format!("you must provide one of first or last for the {} connection", f.name))?;
    if first > MAX_PAGE {
        return Err(format!("The page size of {} ({first}) exceeds the maximum of {MAX_PAGE}.", f.name));
    }
    let start = match f.arg("after", variables) {
        Some(Json::String(cursor)) => cursor.strip_prefix("cursor:").and_then(|n| n.parse::<usize>().ok()).ok_or(format!("Invalid cursor for the {} connection", f.name))? + 1,
        _ => 0,
    };
    let node = f.connection_node().unwrap_or(&[]);
    let end = (start + first as usize).min(all.len());
    let nodes: Vec<Json> = all.get(start..end).unwrap_or(&[]).iter().map(|n| project(n, node, variables, true)).collect::<Result<_, _>>()?;
    let mut out = Map::new();
    for part in fields_of(&f.selections) {
        match part.name.as_str() {
            "nodes" => {
                out.insert("nodes".into(), Json::Array(nodes.clone()));
            }
            "edges" => {
                let edges = nodes.iter().enumerate().map(|(i, n)| json!({"node": n, "cursor": format!("cursor:{}", start + i)})).collect();
                out.insert("edges".into(), Json::Array(edges));
            }
            "pageInfo" => {
                let info = json!({"hasNextPage": end < all.len(), "endCursor": (end > start).then(|| format!("cursor:{}", end - 1)), "hasPreviousPage": start > 0});
                out.insert("pageInfo".into(), project(&info, &part.selections, variables, true)?);
            }
            _ => {}
        }
    }
    Ok(Json::Object(out))
}
