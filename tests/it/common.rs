//! Helpers: land fixture files into a temporary root, normalize, read values.

use polars::prelude::*;
use shopfeat::land::{self, LandReport};
use shopfeat::normalize::{self, AsOf, RawTables};
use shopfeat::storage::DataRoot;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Shopify's documented REST examples (MIT; licence beside them).
pub fn rest_examples() -> PathBuf {
    fixture("shopify-rest-2025-01")
}

/// Every feature table of `shop` at `as_of`, computed and published through the
/// pipeline, as read back from the files it published.
pub fn compute(root: &DataRoot, shop: &str, as_of: i64, pairs: shopfeat::features::pairs::PairOptions) -> anyhow::Result<shopfeat::pipeline::Computed> {
    let report = shopfeat::pipeline::compute_and_publish(root, shop, &shopfeat::pipeline::ComputeOptions { pairs, ..shopfeat::pipeline::ComputeOptions::at(as_of) })?;
    let read = |table| anyhow::Ok((table, shopfeat::sinks::parquet::read_current_required(root, shop, table)?));
    let tables = report.tables.iter().map(|t| read(t.table)).collect::<anyhow::Result<_>>()?;
    Ok(shopfeat::pipeline::Computed { tables, report })
}

/// The file of feature table `table` in the current generation of `shop`.
pub fn feature_file(root: &DataRoot, shop: &str, table: &str) -> PathBuf {
    root.local_dir().unwrap().join(shopfeat::sinks::parquet::current_table_path(root, shop, table).unwrap())
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `2025-02-10T12:00:00Z` → µs.
pub fn ts(s: &str) -> i64 {
    shopfeat::time::parse_time(s).expect("test timestamp")
}

/// A temporary data root with one shop landed from `inputs`.
pub struct Landed {
    /// Kept so the root outlives the tables read from it.
    pub _dir: tempfile::TempDir,
    pub root: DataRoot,
    pub report: LandReport,
}

pub fn land(inputs: &[PathBuf]) -> Landed {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    let files = land::collect_inputs(inputs).unwrap();
    let report = land::land(&root, "test", &files, &shopfeat::progress::Progress::hidden()).unwrap();
    Landed { _dir: dir, root, report }
}

impl Landed {
    pub fn tables(&self, as_of: AsOf) -> BTreeMap<&'static str, Table> {
        let raw = RawTables::open(&self.root, "test").unwrap();
        let main = normalize::normalize(&raw, as_of).unwrap();
        let named = main.named();
        let frames = normalize::collect_all(named.iter().map(|(_, lf)| lf.clone()).collect()).unwrap();
        named.into_iter().map(|(n, _)| n).zip(frames.into_iter().map(Table)).collect()
    }
}

/// A collected table with lookups by key.
pub struct Table(pub DataFrame);

impl Table {
    pub fn height(&self) -> usize {
        self.0.height()
    }

    /// Values of an integer or timestamp column, in row order.
    pub fn i64s(&self, column: &str) -> Vec<Option<i64>> {
        let c = self.0.column(column).unwrap().cast(&DataType::Int64).unwrap();
        c.i64().unwrap().iter().collect()
    }

    /// Sorted non-null values of an integer column.
    pub fn ids(&self, column: &str) -> Vec<i64> {
        let mut v: Vec<i64> = self.i64s(column).into_iter().flatten().collect();
        v.sort();
        v
    }

    fn row(&self, key: &str, id: i64) -> usize {
        let rows: Vec<usize> = self.i64s(key).iter().enumerate().filter(|(_, v)| **v == Some(id)).map(|(i, _)| i).collect();
        assert_eq!(rows.len(), 1, "expected exactly one row with {key} = {id}, found {}", rows.len());
        rows[0]
    }

    fn rows_where(&self, key: &str, value: &str) -> usize {
        let c = self.0.column(key).unwrap().cast(&DataType::String).unwrap();
        let rows: Vec<usize> = c.str().unwrap().iter().enumerate().filter(|(_, v)| *v == Some(value)).map(|(i, _)| i).collect();
        assert_eq!(rows.len(), 1, "expected exactly one row with {key} = {value}, found {}", rows.len());
        rows[0]
    }

    pub fn get(&self, key: &str, id: i64, column: &str) -> AnyValue<'static> {
        self.0.column(column).unwrap().get(self.row(key, id)).unwrap().into_static()
    }

    pub fn get_by(&self, key: &str, value: &str, column: &str) -> AnyValue<'static> {
        self.0.column(column).unwrap().get(self.rows_where(key, value)).unwrap().into_static()
    }

    pub fn str(&self, key: &str, id: i64, column: &str) -> Option<String> {
        as_str(self.get(key, id, column))
    }
    pub fn int(&self, key: &str, id: i64, column: &str) -> Option<i64> {
        as_i64(self.get(key, id, column))
    }
    pub fn float(&self, key: &str, id: i64, column: &str) -> Option<f64> {
        match self.get(key, id, column) {
            AnyValue::Null => None,
            v => v.extract::<f64>(),
        }
    }
    pub fn bool(&self, key: &str, id: i64, column: &str) -> Option<bool> {
        match self.get(key, id, column) {
            AnyValue::Boolean(b) => Some(b),
            AnyValue::Null => None,
            other => panic!("{column} is not a boolean: {other:?}"),
        }
    }
    pub fn strs(&self, key: &str, id: i64, column: &str) -> Vec<String> {
        list_strs(self.get(key, id, column))
    }
}

pub fn as_str(v: AnyValue) -> Option<String> {
    match v {
        AnyValue::Null => None,
        AnyValue::String(s) => Some(s.to_string()),
        AnyValue::StringOwned(s) => Some(s.to_string()),
        other => panic!("not a string: {other:?}"),
    }
}

pub fn as_i64(v: AnyValue) -> Option<i64> {
    match v {
        AnyValue::Null => None,
        AnyValue::Datetime(t, _, _) => Some(t),
        AnyValue::DatetimeOwned(t, _, _) => Some(t),
        v => v.extract::<i64>(),
    }
}

pub fn list_strs(v: AnyValue) -> Vec<String> {
    match v {
        AnyValue::List(s) => s.str().unwrap().iter().map(|x| x.unwrap_or_default().to_string()).collect(),
        AnyValue::Null => vec![],
        other => panic!("not a list: {other:?}"),
    }
}

pub fn list_i64s(v: AnyValue) -> Vec<i64> {
    match v {
        AnyValue::List(s) => s.i64().unwrap().iter().flatten().collect(),
        AnyValue::Null => vec![],
        other => panic!("not a list: {other:?}"),
    }
}

/// A feature table computed on the hand-built shop (`tests/fixtures/features`) at `t`.
pub fn features_fixture(t: &str, build: impl Fn(&shopfeat::features::Inputs) -> PolarsResult<LazyFrame>) -> Table {
    feature_table_on("features", t, build)
}

/// A feature table computed on the fixture shop `tests/fixtures/<name>` at `t`.
pub fn feature_table_on(name: &str, t: &str, build: impl Fn(&shopfeat::features::Inputs) -> PolarsResult<LazyFrame>) -> Table {
    let landed = land(&[fixture(name)]);
    assert!(landed.report.problems.is_empty(), "{:?}", landed.report.problems);
    let raw = RawTables::open(&landed.root, "test").unwrap();
    let as_of = ts(t);
    // As `compute` does: the events in their two parts.
    let main = normalize::normalize(&raw, Some(as_of)).unwrap().for_features();
    let inputs = shopfeat::features::Inputs::new(main, "shop-x", as_of, Default::default()).unwrap();
    Table(build(&inputs).unwrap().collect().unwrap())
}

/// Asserts a float equals a hand-computed value (to rounding).
pub fn close(actual: Option<f64>, expected: f64) {
    let a = actual.expect("a value");
    assert!((a - expected).abs() < 1e-9, "{a} != {expected}");
}
