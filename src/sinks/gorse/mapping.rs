//! Feature rows → Gorse objects. Which features become labels, and how each is
//! scaled, is declared once here; the README's Gorse section describes the same.
//!
//! Gorse accepts labels that are strings, numbers, arrays of all-strings or
//! all-numbers, or objects of those: booleans become 0/1, numbers are scaled to
//! about 0..1 and rounded to 4 decimals (so a last-bit change in a float sum does
//! not count as a changed row).

use anyhow::{bail, Context, Result};
use polars::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// How one feature becomes one label.
#[derive(Clone, Copy)]
pub enum Label {
    /// A bucket or name, sent as is (omitted when null or empty).
    Text(&'static str),
    /// `value / max`, clamped to 0..1.
    Ratio(&'static str, f64),
    /// `ln(1 + value) / ln(1 + max)`, clamped to 0..1: for long-tailed amounts.
    Log(&'static str, f64),
    /// A boolean as 0 or 1.
    Flag(&'static str),
}

impl Label {
    fn column(self) -> &'static str {
        match self {
            Label::Text(c) | Label::Ratio(c, _) | Label::Log(c, _) | Label::Flag(c) => c,
        }
    }
}

/// Item labels, from product_features: (label name, source).
pub const ITEM_LABELS: &[(&str, Label)] = &[
    ("price_tier", Label::Text("price_tier")),
    ("vendor", Label::Text("vendor")),
    ("price", Label::Log("price", 10_000.0)),
    ("discount", Label::Ratio("discount_pct", 1.0)),
    ("popularity", Label::Ratio("popularity_score", 1.0)),
    ("trending", Label::Ratio("trending_score", 1.0)),
    ("conversion_rate", Label::Ratio("conversion_rate", 1.0)),
    ("units_sold", Label::Log("total_units_sold", 10_000.0)),
    ("refund_rate", Label::Ratio("refund_rate", 1.0)),
    ("content_richness", Label::Ratio("content_richness_score", 100.0)),
    ("media_richness", Label::Ratio("media_richness", 100.0)),
    ("has_video", Label::Flag("has_video_content")),
];

/// The item label holding the product's vector (product_embeddings), for
/// Gorse's embedding item-to-item recommender (`column = "item.Labels.embedding"`).
/// Read in Gorse's source (logics/item_to_item.go, common/bfloats): the
/// numbers become float32, then bfloat16 by truncation, and items are compared
/// by Euclidean distance, which panics on vectors of two lengths — so every
/// vector has the table's one dimension, and is a unit vector. A product
/// without a vector has no key: Gorse skips it (logging that it found none);
/// an empty array instead would, in its click-through model's label reader
/// (model/ctr/data.go), drop the item's other labels.
pub const EMBEDDING_LABEL: &str = "embedding";

/// User labels, from user_features.
pub const USER_LABELS: &[(&str, Label)] = &[
    ("rfm_segment", Label::Text("rfm_segment")),
    ("lifecycle_stage", Label::Text("lifecycle_stage")),
    ("price_point_preference", Label::Text("price_point_preference")),
    ("preferred_category", Label::Text("preferred_category")),
    ("country_code", Label::Text("country_code")),
    ("recency", Label::Ratio("recency_score", 5.0)),
    ("frequency", Label::Ratio("frequency_score", 5.0)),
    ("monetary", Label::Ratio("monetary_score", 5.0)),
    ("total_spent", Label::Log("total_spent", 10_000.0)),
    ("health", Label::Ratio("customer_health_score", 100.0)),
    ("churn_risk", Label::Ratio("churn_risk_score", 1.0)),
    ("discount_sensitivity", Label::Ratio("discount_sensitivity", 1.0)),
    ("refund_rate", Label::Ratio("refund_rate", 1.0)),
    ("accepts_marketing", Label::Flag("accepts_marketing")),
    // From customer_lifetime_features (absent when the shop could not be fitted).
    ("p_alive", Label::Ratio("p_alive", 1.0)),
    ("expected_value_90d", Label::Log("expected_value_90d", 10_000.0)),
];

/// The user labels read from customer_lifetime_features rather than user_features.
const LIFETIME_COLUMNS: [&str; 2] = ["p_alive", "expected_value_90d"];

/// Feedback types, from interaction_features: (type, count column, timestamp column).
/// A (customer, product) gets a feedback of a type when its count is positive; the
/// count is the feedback's `Value`.
pub const FEEDBACK_TYPES: &[(&str, &str, &str)] = &[
    ("purchase", "purchase_count", "last_purchase_at"),
    ("add_to_cart", "cart_add_count", "last_cart_add_at"),
    ("view", "view_count", "last_view_at"),
];

/// What kind of Gorse object a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Item,
    User,
    Feedback,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Item, Kind::User, Kind::Feedback];

    /// The place of this kind in [`Kind::ALL`] (and in per-kind arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Item => "item",
            Kind::User => "user",
            Kind::Feedback => "feedback",
        }
    }

    /// The request that inserts a batch: items and users are replaced whole on
    /// POST; feedback is PUT so a re-export overwrites instead of adding.
    pub fn upsert(self) -> (&'static str, &'static str) {
        match self {
            Kind::Item => ("POST", "/api/items"),
            Kind::User => ("POST", "/api/users"),
            Kind::Feedback => ("PUT", "/api/feedback"),
        }
    }

    /// The path that deletes one object, from its key (`ItemId`, `UserId`, or
    /// `type/UserId/ItemId` for feedback).
    pub fn delete_path(self, key: &str) -> String {
        match self {
            Kind::Item => format!("/api/item/{key}"),
            Kind::User => format!("/api/user/{key}"),
            Kind::Feedback => format!("/api/feedback/{key}"),
        }
    }
}

/// One table's rows as Gorse objects, built one at a time on demand.
pub struct Source {
    pub kind: Kind,
    pub(super) frame: DataFrame,
    pub(super) prefix: String,
    /// Feedback: 3 candidate objects per interaction row, one per type.
    per_row: usize,
}

impl Source {
    /// Candidate rows; [`Source::object`] returns `None` for those that are not
    /// objects (a feedback type with a zero count).
    pub fn len(&self) -> usize {
        self.frame.height() * self.per_row
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (key, object) of candidate `i`.
    pub fn object(&self, i: usize) -> Result<Option<(String, Value)>> {
        match self.kind {
            Kind::Item => self.item(i).map(Some),
            Kind::User => self.user(i).map(Some),
            Kind::Feedback => self.feedback(i / self.per_row, FEEDBACK_TYPES[i % self.per_row]),
        }
    }

    fn id(&self, column: &str, row: usize) -> Result<String> {
        let id = self.frame.column(column)?.i64()?.get(row).with_context(|| format!("{column} is null"))?;
        Ok(format!("{}{id}", self.prefix))
    }

    fn item(&self, row: usize) -> Result<(String, Value)> {
        let id = self.id("product_id", row)?;
        let mut categories: Vec<String> = string_list(&self.frame, "collection_handles", row)?;
        if let Some(t) = string(&self.frame, "product_type", row)?.filter(|t| !t.is_empty()) {
            categories.push(format!("type:{t}"));
        }
        let mut labels = labels(&self.frame, ITEM_LABELS, row)?;
        if let Some(vector) = embedding(&self.frame, row)? {
            labels[EMBEDDING_LABEL] = vector;
        }
        let mut item = json!({
            "ItemId": id,
            "IsHidden": !self.frame.column("is_active")?.bool()?.get(row).unwrap_or(false),
            "Categories": categories,
            "Labels": labels,
            "Comment": string(&self.frame, "title", row)?.unwrap_or_default(),
        });
        if let Some(t) = timestamp(&self.frame, "published_at", row)? {
            item["Timestamp"] = Value::String(t);
        }
        Ok((id, item))
    }

    fn user(&self, row: usize) -> Result<(String, Value)> {
        let id = self.id("customer_id", row)?;
        let user = json!({ "UserId": id, "Labels": labels(&self.frame, USER_LABELS, row)? });
        Ok((id, user))
    }

    fn feedback(&self, row: usize, (kind, count, at): (&str, &str, &str)) -> Result<Option<(String, Value)>> {
        let count = self.frame.column(count)?.i64()?.get(row).unwrap_or(0);
        if count <= 0 {
            return Ok(None);
        }
        let (user, item) = (self.id("customer_id", row)?, self.id("product_id", row)?);
        let mut feedback = json!({ "FeedbackType": kind, "UserId": user, "ItemId": item, "Value": count });
        if let Some(t) = timestamp(&self.frame, at, row)? {
            feedback["Timestamp"] = Value::String(t);
        }
        Ok(Some((format!("{kind}/{user}/{item}"), feedback)))
    }
}

/// The three sources of one shop, read from its feature Parquet files (the
/// prefix checked by [`check_prefix`] first); `lifetime` (customer_lifetime_features)
/// adds user labels and `embeddings` (product_embeddings) the item label
/// [`EMBEDDING_LABEL`]; both are absent in generations computed before they existed.
/// Feedback is kept only between exported users and items: Gorse would otherwise
/// insert a bare item or user for it.
pub fn sources(products: DataFrame, embeddings: Option<DataFrame>, users: DataFrame, interactions: DataFrame, lifetime: Option<DataFrame>, prefix: &str) -> Result<Vec<Source>> {
    let products = item_columns(products, embeddings)?;
    let users = user_columns(users, lifetime)?;
    let known = |frame: &DataFrame, column: &str| -> Result<HashSet<i64>> { Ok(frame.column(column)?.i64()?.iter().flatten().collect()) };
    let (product_ids, user_ids) = (known(&products, "product_id")?, known(&users, "customer_id")?);
    let interactions = feedback_columns(interactions)?;
    let keep: BooleanChunked = interactions
        .column("customer_id")?
        .i64()?
        .iter()
        .zip(interactions.column("product_id")?.i64()?.iter())
        .map(|(c, p)| Some(c.is_some_and(|c| user_ids.contains(&c)) && p.is_some_and(|p| product_ids.contains(&p))))
        .collect();
    let interactions = interactions.filter(&keep)?;
    let source = |kind, frame: DataFrame, per_row| -> Result<Source> { Ok(Source { kind, frame: row_ready(frame)?, prefix: prefix.to_string(), per_row }) };
    Ok(vec![source(Kind::Item, products, 1)?, source(Kind::User, users, 1)?, source(Kind::Feedback, interactions, FEEDBACK_TYPES.len())?])
}

/// Rows of product_features (with their rows of product_embeddings) as Gorse
/// items only (the fast lane's export).
pub fn items(products: DataFrame, embeddings: Option<DataFrame>, prefix: &str) -> Result<Source> {
    Ok(Source { kind: Kind::Item, frame: row_ready(item_columns(products, embeddings)?)?, prefix: prefix.to_string(), per_row: 1 })
}

/// Rows of user_features (with the customers' rows of
/// customer_lifetime_features) as Gorse users, and rows of interaction_features
/// as their feedback (the fast lane's export: the items they name are in Gorse).
pub fn users_and_feedback(users: DataFrame, lifetime: Option<DataFrame>, interactions: DataFrame, prefix: &str) -> Result<[Source; 2]> {
    let source = |kind, frame: DataFrame, per_row| -> Result<Source> { Ok(Source { kind, frame: row_ready(frame)?, prefix: prefix.to_string(), per_row }) };
    Ok([source(Kind::User, user_columns(users, lifetime)?, 1)?, source(Kind::Feedback, feedback_columns(interactions)?, FEEDBACK_TYPES.len())?])
}

/// The columns of user_features and customer_lifetime_features a user is made of.
fn user_columns(users: DataFrame, lifetime: Option<DataFrame>) -> Result<DataFrame> {
    let users = with_lifetime(users, lifetime)?;
    Ok(users.select(std::iter::once("customer_id").chain(USER_LABELS.iter().map(|(_, l)| l.column())).map(PlSmallStr::from))?)
}

/// The columns of interaction_features a feedback is made of.
fn feedback_columns(interactions: DataFrame) -> Result<DataFrame> {
    let mut columns = vec!["customer_id", "product_id"];
    columns.extend(FEEDBACK_TYPES.iter().flat_map(|(_, count, at)| [*count, *at]));
    Ok(interactions.select(columns.into_iter().map(PlSmallStr::from))?)
}

/// The columns of product_features an item is made of, and product_embeddings'
/// `embedding` (null without the table).
fn item_columns(products: DataFrame, embeddings: Option<DataFrame>) -> Result<DataFrame> {
    let columns = ["product_id", "is_active", "published_at", "collection_handles", "product_type", "title"];
    let products = products.select(columns.iter().copied().chain(ITEM_LABELS.iter().map(|(_, l)| l.column())).map(PlSmallStr::from))?.lazy();
    let products = match embeddings {
        Some(embeddings) => products.join(embeddings.lazy().select([col("product_id"), col("embedding")]), [col("product_id")], [col("product_id")], JoinArgs::new(JoinType::Left)),
        None => products.with_column(lit(NULL).cast(DataType::List(Box::new(DataType::Float32))).alias("embedding")),
    };
    Ok(products.collect()?)
}

/// `users` with the lifetime labels' columns (null without the table).
fn with_lifetime(users: DataFrame, lifetime: Option<DataFrame>) -> Result<DataFrame> {
    let users = users.lazy();
    let users = match lifetime {
        Some(lifetime) => {
            let columns: Vec<Expr> = std::iter::once(col("customer_id")).chain(LIFETIME_COLUMNS.map(col)).collect();
            users.join(lifetime.lazy().select(columns), [col("customer_id")], [col("customer_id")], JoinArgs::new(JoinType::Left))
        }
        None => users.with_columns(LIFETIME_COLUMNS.map(|c| lit(NULL).cast(DataType::Float64).alias(c))),
    };
    Ok(users.collect()?)
}

/// One chunk per column and timestamps as µs integers, so reading a row is cheap.
fn row_ready(frame: DataFrame) -> Result<DataFrame> {
    let columns = frame
        .columns()
        .iter()
        .map(|c| match c.dtype() {
            DataType::Datetime(_, _) => c.cast(&DataType::Int64),
            _ => Ok(c.clone()),
        })
        .collect::<PolarsResult<Vec<_>>>()?;
    let mut frame = DataFrame::new_infer_height(columns)?;
    frame.rechunk_mut();
    Ok(frame)
}

/// Ids go into URL paths (`DELETE /api/item/{id}`): the prefix may only hold
/// characters that need no escaping, and never `/`.
pub fn check_prefix(prefix: &str) -> Result<()> {
    if let Some(c) = prefix.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.:".contains(*c))) {
        bail!("Gorse id prefix {prefix:?} contains {c:?}: use letters, digits and - _ . : only");
    }
    Ok(())
}

fn labels(frame: &DataFrame, declared: &[(&str, Label)], row: usize) -> Result<Value> {
    let mut labels = Map::new();
    for (name, label) in declared {
        let value = match *label {
            Label::Text(c) => string(frame, c, row)?.filter(|s| !s.is_empty()).map(Value::String),
            Label::Ratio(c, _) | Label::Log(c, _) => number(frame, c, row)?.map(|x| json!(scaled_label(*label, x))),
            Label::Flag(c) => frame.column(c)?.bool()?.get(row).map(|b| json!(b as u8)),
        };
        if let Some(value) = value {
            labels.insert(name.to_string(), value);
        }
    }
    Ok(Value::Object(labels))
}

/// The row's vector as the item label: numbers rounded to 5 decimals (finer
/// than the bfloat16 Gorse keeps for all but the smallest, and a last-bit
/// change in a recomputed vector does not count as a changed row); `None`
/// without a vector.
fn embedding(frame: &DataFrame, row: usize) -> Result<Option<Value>> {
    let Some(vector) = frame.column("embedding")?.list()?.get_as_series(row) else { return Ok(None) };
    let numbers: Vec<Value> = vector.f32()?.into_no_null_iter().map(|x| json!(embedding_number(x))).collect();
    Ok(Some(Value::Array(numbers)))
}

/// One number of a vector as sent.
pub(super) fn embedding_number(x: f32) -> f64 {
    (f64::from(x) * 100_000.0).round() / 100_000.0
}

/// A number label's value as sent: scaled to 0..1 and rounded to 4 decimals.
pub(super) fn scaled_label(label: Label, x: f64) -> f64 {
    let x = match label {
        Label::Ratio(_, max) => x / max,
        Label::Log(_, max) => x.max(0.0).ln_1p() / max.ln_1p(),
        Label::Text(_) | Label::Flag(_) => x,
    };
    let x = if x.is_finite() { x.clamp(0.0, 1.0) } else { 0.0 };
    (x * 10_000.0).round() / 10_000.0
}

fn number(frame: &DataFrame, column: &str, row: usize) -> Result<Option<f64>> {
    let c = frame.column(column)?;
    Ok(match c.dtype() {
        DataType::Float64 => c.f64()?.get(row),
        DataType::Int64 => c.i64()?.get(row).map(|v| v as f64),
        other => bail!("{column}: expected a number, found {other}"),
    })
}

fn string(frame: &DataFrame, column: &str, row: usize) -> Result<Option<String>> {
    Ok(frame.column(column)?.str()?.get(row).map(str::to_string))
}

fn string_list(frame: &DataFrame, column: &str, row: usize) -> Result<Vec<String>> {
    let Some(list) = frame.column(column)?.list()?.get_as_series(row) else { return Ok(vec![]) };
    Ok(list.str()?.iter().flatten().map(str::to_string).collect())
}

/// RFC 3339 with `Z`, whole seconds unless the time has a fraction.
fn timestamp(frame: &DataFrame, column: &str, row: usize) -> Result<Option<String>> {
    let micros = frame.column(column)?.i64()?.get(row);
    Ok(micros.and_then(chrono::DateTime::from_timestamp_micros).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)))
}
