//! The feature registry: every column of every feature table declared once, with
//! its name, type, description and expression. The output schema, `shopfeat
//! features` and the docs all read it, so they cannot drift apart.

use polars::prelude::*;
use std::collections::HashSet;

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
    ListF32,
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
            Kind::ListF32 => "list[f32]",
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
            Kind::ListF32 => DataType::List(Box::new(DataType::Float32)),
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

/// What a feature's value depends on, which decides whether a fast cycle of
/// `serve` (one that recomputes only the rows a delivery touched) refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// The entity's own record (a product's title, variants, media and
    /// collections; a customer's account): exact after a fast cycle that
    /// recomputed the row from that record.
    Own,
    /// Aggregates over the records that name the entity (orders, events,
    /// sessions), windows at `T` among them: exact for the rows a cycle
    /// recomputes from those records; a catalog-only fast cycle leaves them.
    Related,
    /// Statistics over the whole shop (quintiles, shares, the lifetime model's
    /// fit): only a full cycle recomputes them; a fast cycle leaves them as
    /// they were.
    ShopWide,
}

impl Scope {
    pub fn name(self) -> &'static str {
        match self {
            Scope::Own => "own",
            Scope::Related => "related",
            Scope::ShopWide => "shop-wide",
        }
    }
}

/// A feature table: its name, key columns and features, in output order.
pub struct FeatureTable {
    pub name: &'static str,
    pub key: &'static [(&'static str, Kind)],
    pub features: Vec<Feature>,
    /// Features whose base columns come from the entity's own record only
    /// ([`Scope::Own`]); …
    pub own: &'static [&'static str],
    /// … and the base columns that are statistics over the whole shop (the
    /// shop's order count, a quintile): a feature that reads one is
    /// [`Scope::ShopWide`]. Every other feature that reads a base column is
    /// [`Scope::Related`]; a feature that reads other features takes the widest
    /// of their scopes and its own ([`FeatureTable::scopes`]), so only the roots
    /// are listed.
    pub shop_wide: &'static [&'static str],
}

impl FeatureTable {
    /// Adds the features to `base` in declaration order, then keeps `shop_id`,
    /// `computed_at`, the key and the features, each cast to its declared type.
    pub fn project(&self, base: LazyFrame, shop_id: &str, as_of: i64) -> LazyFrame {
        let frame = self.with_features(base, as_of, |_| true);
        let mut columns = vec![
            lit(shop_id.to_string()).alias("shop_id"),
            lit(as_of).strict_cast(Kind::Ts.dtype()).alias("computed_at"),
        ];
        columns.extend(self.key.iter().map(|(k, kind)| col(*k).strict_cast(kind.dtype())));
        columns.extend(self.features.iter().map(|f| col(f.name)));
        frame.select(columns)
    }

    /// The key and `outputs` only: the features they read (transitively) are
    /// added to `base`, the others are not.
    pub fn project_only(&self, base: LazyFrame, as_of: i64, outputs: &[&str]) -> LazyFrame {
        let reads = self.reads(outputs);
        let frame = self.with_features(base, as_of, |f| reads.reads(f.name));
        let columns = self.key.iter().map(|(k, kind)| col(*k).strict_cast(kind.dtype())).chain(outputs.iter().map(|c| col(*c)));
        frame.select(columns.collect::<Vec<_>>())
    }

    fn with_features(&self, base: LazyFrame, as_of: i64, wanted: impl Fn(&Feature) -> bool) -> LazyFrame {
        let mut frame = base;
        for f in self.features.iter().filter(|f| wanted(f)) {
            frame = frame.with_column(f.expr(as_of).strict_cast(f.kind.dtype()).alias(f.name));
        }
        frame
    }

    /// The columns `outputs` read, features and base columns alike: a feature
    /// reads the columns its expression names, which may be earlier features.
    pub fn reads(&self, outputs: &[&str]) -> Reads {
        let mut read: HashSet<PlSmallStr> = outputs.iter().chain(self.key.iter().map(|(k, _)| k)).map(|c| PlSmallStr::from(*c)).collect();
        for f in self.features.iter().rev() {
            if read.contains(f.name) {
                match columns_named(&f.expr(0)) {
                    Some(names) => read.extend(names),
                    None => return Reads::all(),
                }
            }
        }
        Reads(Some(read))
    }
    /// The scope of every feature, in declaration order: the widest of its own
    /// mark (`ShopWide` when it reads a column of `shop_wide`, `Own` when listed
    /// in `own`, else `Related` when it reads a base column, else `Own`) and the
    /// scopes of the features it reads.
    pub fn scopes(&self) -> Vec<Scope> {
        let mut scopes: Vec<(&str, Scope)> = Vec::with_capacity(self.features.len());
        for f in &self.features {
            let read = columns_named(&f.expr(0)).unwrap_or_default();
            let earlier = |c: &PlSmallStr| scopes.iter().find(|(name, _)| *name == c.as_str()).map(|(_, s)| *s);
            let keyed = |c: &PlSmallStr| self.key.iter().any(|(k, _)| *k == c.as_str());
            let reads_base = read.iter().any(|c| earlier(c).is_none() && !keyed(c));
            let mark = if read.iter().any(|c| self.shop_wide.contains(&c.as_str())) {
                Scope::ShopWide
            } else if self.own.contains(&f.name) || !reads_base {
                Scope::Own
            } else {
                Scope::Related
            };
            let scope = read.iter().filter_map(earlier).fold(mark, Scope::max);
            scopes.push((f.name, scope));
        }
        scopes.into_iter().map(|(_, s)| s).collect()
    }

    /// The features of `scope`, in declaration order.
    pub fn features_of(&self, scope: Scope) -> Vec<&'static str> {
        self.features.iter().zip(self.scopes()).filter(|(_, s)| *s == scope).map(|(f, _)| f.name).collect()
    }

    /// Every output column with its type: `shop_id`, `computed_at`, key, features.
    pub fn schema(&self) -> Vec<(&'static str, Kind)> {
        let mut out = vec![("shop_id", Kind::Str), ("computed_at", Kind::Ts)];
        out.extend(self.key.iter().copied());
        out.extend(self.features.iter().map(|f| (f.name, f.kind)));
        out
    }
}

/// The base columns a plan reads: every column, or a known set (see
/// [`FeatureTable::reads`]); a table's base frame joins only the aggregates read.
pub struct Reads(Option<HashSet<PlSmallStr>>);

impl Reads {
    /// Every column (a whole feature table).
    pub fn all() -> Reads {
        Reads(None)
    }

    pub fn reads(&self, column: &str) -> bool {
        self.0.as_ref().is_none_or(|read| read.contains(column))
    }

    /// Whether any column of `frame` other than its `keys` is read.
    pub fn any_of(&self, frame: &mut LazyFrame, keys: &[&str]) -> PolarsResult<bool> {
        if self.0.is_none() {
            return Ok(true);
        }
        Ok(frame.collect_schema()?.iter_names().any(|c| !keys.contains(&c.as_str()) && self.reads(c)))
    }
}

/// The columns an expression names; `None` when it selects columns by pattern.
fn columns_named(expr: &Expr) -> Option<Vec<PlSmallStr>> {
    let mut names = vec![];
    for e in expr {
        match e {
            Expr::Column(name) => names.push(name.clone()),
            Expr::Selector(_) => return None,
            _ => {}
        }
    }
    Some(names)
}
