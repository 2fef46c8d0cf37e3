//! The feature registry: every column of every feature table declared once, with
//! its name, type, description and expression. The output schema, `shopfeat
//! features` and the docs all read it, so they cannot drift apart.

use polars::prelude::*;

/// Column types of the catalog (the README's feature catalog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    I64,
    F64,
    Str,
    Bool,
    /// Timestamp, µs, UTC.
    Ts,
    ListStr,
    ListI64,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::I64 => "i64",
            Kind::F64 => "f64",
            Kind::Str => "str",
            Kind::Bool => "bool",
            Kind::Ts => "ts",
            Kind::ListStr => "list[str]",
            Kind::ListI64 => "list[i64]",
        }
    }

    pub fn dtype(self) -> DataType {
        match self {
            Kind::I64 => DataType::Int64,
            Kind::F64 => DataType::Float64,
            Kind::Str => DataType::String,
            Kind::Bool => DataType::Boolean,
            Kind::Ts => DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)),
            Kind::ListStr => DataType::List(Box::new(DataType::String)),
            Kind::ListI64 => DataType::List(Box::new(DataType::Int64)),
        }
    }
}

/// One feature column. Its expression is evaluated over the table's base frame
/// with every feature declared before it already present, so a rate can name its
/// counts.
pub struct Feature {
    pub name: &'static str,
    pub kind: Kind,
    pub description: &'static str,
    definition: Definition,
}

/// A feature's expression: most do not depend on the point in time `T`; those
/// that do (days since, windows) are handed it, so a table's definition is built
/// without one (as `shopfeat features` builds the catalog).
enum Definition {
    Fixed(Box<dyn Fn() -> Expr + Send + Sync>),
    AtT(Box<dyn Fn(i64) -> Expr + Send + Sync>),
}

impl Feature {
    /// The column's expression at `T` (µs since the epoch).
    pub fn expr(&self, as_of: i64) -> Expr {
        match &self.definition {
            Definition::Fixed(expr) => expr(),
            Definition::AtT(expr) => expr(as_of),
        }
    }

    /// Whether the expression depends on `T`.
    pub fn reads_as_of(&self) -> bool {
        matches!(self.definition, Definition::AtT(_))
    }
}

/// A feature whose expression does not depend on `T`.
pub fn feature(name: &'static str, kind: Kind, description: &'static str, expr: impl Fn() -> Expr + Send + Sync + 'static) -> Feature {
    Feature { name, kind, description, definition: Definition::Fixed(Box::new(expr)) }
}

/// A feature whose expression reads `T` (µs since the epoch), e.g. days since.
pub fn feature_at(name: &'static str, kind: Kind, description: &'static str, expr: impl Fn(i64) -> Expr + Send + Sync + 'static) -> Feature {
    Feature { name, kind, description, definition: Definition::AtT(Box::new(expr)) }
}

/// A feature table: its name, key columns and features, in output order.
pub struct FeatureTable {
    pub name: &'static str,
    pub key: &'static [(&'static str, Kind)],
    pub features: Vec<Feature>,
}

impl FeatureTable {
    /// Adds the features to `base` in declaration order, then keeps `shop_id`,
    /// `computed_at`, the key and the features, each cast to its declared type.
    pub fn project(&self, base: LazyFrame, shop_id: &str, as_of: i64) -> LazyFrame {
        let mut frame = base;
        for f in &self.features {
            frame = frame.with_column(f.expr(as_of).strict_cast(f.kind.dtype()).alias(f.name));
        }
        let mut columns = vec![
            lit(shop_id.to_string()).alias("shop_id"),
            lit(as_of).strict_cast(Kind::Ts.dtype()).alias("computed_at"),
        ];
        columns.extend(self.key.iter().map(|(k, kind)| col(*k).strict_cast(kind.dtype())));
        columns.extend(self.features.iter().map(|f| col(f.name)));
        frame.select(columns)
    }

    /// Every output column with its type: `shop_id`, `computed_at`, key, features.
    pub fn schema(&self) -> Vec<(&'static str, Kind)> {
        let mut out = vec![("shop_id", Kind::Str), ("computed_at", Kind::Ts)];
        out.extend(self.key.iter().copied());
        out.extend(self.features.iter().map(|f| (f.name, f.kind)));
        out
    }
}
