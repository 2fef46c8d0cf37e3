//! The raw layer's tables: what `ingest` lands for each kind of record.
//!
//! Every raw row keeps its whole source record (`record`, the JSON text) beside the
//! fields that normalization reads, so a later version can read more of it without
//! re-fetching. The typed fields are decoded once, here at landing: ids are plain
//! i64 whatever their shape (GID, number, numeric string), money is f64 in shop
//! currency, timestamps are µs since the epoch, UTC.

use crate::vocabulary::RawEntity;
use polars::prelude::*;

/// Where a raw row came from. Normalization orders versions of one entity by
/// (`updated_at`, `snapshot`, `source_rank`, `file`, `line`): later snapshots win,
/// and within one snapshot webhook files come after bulk files and files go in
/// name order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origin {
    pub snapshot: String,
    pub source: Source,
    pub topic: Option<String>,
    pub file: String,
    pub line: i64,
    pub received_at: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    #[default]
    Bulk,
    Webhook,
    Events,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Bulk => "bulk",
            Source::Webhook => "webhook",
            Source::Events => "events",
        }
    }
    /// Webhooks are newer news than a bulk export landed in the same snapshot.
    pub fn rank(self) -> i64 {
        match self {
            Source::Bulk | Source::Events => 0,
            Source::Webhook => 1,
        }
    }
    pub fn format(self) -> &'static str {
        match self {
            Source::Bulk => "graphql_bulk_jsonl",
            Source::Webhook => "rest_json",
            Source::Events => "web_pixel_jsonl",
        }
    }
}

/// The buffer of one raw table, whatever its row type.
pub trait RawBuffer {
    fn entity(&self) -> RawEntity;
    fn len(&self) -> usize;
    /// Bytes of record text buffered (the bulk of a buffer's memory).
    fn bytes(&self) -> usize;
    /// Takes the buffered rows out as a frame (origin columns first, then the row's).
    fn take_frame(&mut self) -> PolarsResult<DataFrame>;
    /// Takes the buffered rows out as they are (to make the frame elsewhere).
    fn take(&mut self) -> Box<dyn RawBuffer + Send>;
}

/// Column kinds of raw tables, mapped to Rust cell types and Polars dtypes.
macro_rules! cell {
    (i64) => { Option<i64> };
    (f64) => { Option<f64> };
    (str) => { Option<String> };
    (bool) => { Option<bool> };
    (ts) => { Option<i64> };
    (strs) => { Vec<String> };
    (ids) => { Vec<i64> };
}

fn ts_column(name: &str, values: Vec<Option<i64>>) -> PolarsResult<Column> {
    Series::new(name.into(), values)
        .cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
        .map(Column::from)
}

/// A list column of `inner` values. An all-empty batch would infer `list[null]`;
/// the schema is fixed regardless.
fn list_column<T>(name: &str, values: Vec<Vec<T>>, inner: DataType) -> PolarsResult<Column>
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    let series: Vec<Series> = values.into_iter().map(|v| Series::new(PlSmallStr::EMPTY, v)).collect();
    <Series as NamedFrom<Vec<Series>, ListType>>::new(name.into(), series)
        .cast(&DataType::List(Box::new(inner)))
        .map(Column::from)
}

macro_rules! column {
    (ts, $name:expr, $v:expr) => { ts_column($name, $v)? };
    (strs, $name:expr, $v:expr) => { list_column($name, $v, DataType::String)? };
    (ids, $name:expr, $v:expr) => { list_column($name, $v, DataType::Int64)? };
    ($k:ident, $name:expr, $v:expr) => { Column::new($name.into(), $v) };
}

/// Declares one raw table: a row struct, a column buffer and its Parquet schema.
macro_rules! raw_table {
    ($(#[$doc:meta])* $row:ident, $buf:ident, $entity:expr => { $($field:ident : $kind:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $row { $(pub $field: cell!($kind)),* }

        /// Column buffer of the raw table, flushed to Parquet in batches.
        #[derive(Default)]
        pub struct $buf { origins: Vec<(Origin, String)>, record_bytes: usize, $($field: Vec<cell!($kind)>),* }

        impl $buf {
            pub fn push(&mut self, origin: &Origin, record: String, row: $row) {
                self.record_bytes += record.len();
                self.origins.push((origin.clone(), record));
                $(self.$field.push(row.$field);)*
            }
        }

        impl RawBuffer for $buf {
            fn entity(&self) -> RawEntity { $entity }
            fn len(&self) -> usize { self.origins.len() }
            fn bytes(&self) -> usize { self.record_bytes }
            fn take(&mut self) -> Box<dyn RawBuffer + Send> { Box::new(std::mem::take(self)) }
            fn take_frame(&mut self) -> PolarsResult<DataFrame> {
                let taken = std::mem::take(self);
                let mut columns = origin_columns(taken.origins)?;
                $(columns.push(column!($kind, stringify!($field), taken.$field));)*
                DataFrame::new_infer_height(columns)
            }
        }
    };
}

fn origin_columns(origins: Vec<(Origin, String)>) -> PolarsResult<Vec<Column>> {
    let n = origins.len();
    let (mut snapshot, mut source, mut source_rank, mut format, mut topic) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut file, mut line, mut received, mut record) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for (o, r) in origins {
        snapshot.push(o.snapshot);
        source.push(o.source.name());
        source_rank.push(o.source.rank());
        format.push(o.source.format());
        topic.push(o.topic);
        file.push(o.file);
        line.push(o.line);
        received.push(Some(o.received_at));
        record.push(r);
    }
    Ok(vec![
        Column::new("snapshot".into(), snapshot),
        Column::new("source".into(), source),
        Column::new("source_rank".into(), source_rank),
        Column::new("format".into(), format),
        Column::new("topic".into(), topic),
        Column::new("file".into(), file),
        Column::new("line".into(), line),
        ts_column("received_at", received)?,
        Column::new("record".into(), record),
    ])
}

raw_table! {
    /// A version of a product (bulk `Product` line or REST product payload). A
    /// `products/delete` payload lands as a row with `deleted = true`.
    ProductRow, ProductBuf, RawEntity::Products => {
        product_id: i64, deleted: bool, title: str, handle: str, vendor: str,
        product_type: str, status: str, tags: strs, description: str,
        description_html: str, seo_title: str, seo_description: str,
        created_at: ts, updated_at: ts, published_at: ts, option_count: i64,
        has_collections: bool,
    }
}

raw_table! {
    /// A variant of product `product_id` in the same file (normalization attaches it
    /// to the version of that product it chooses from the file); `parent_line` is
    /// the parent's line where it is known (REST payloads), else null.
    VariantRow, VariantBuf, RawEntity::Variants => {
        variant_id: i64, product_id: i64, parent_line: i64, title: str, sku: str,
        price: f64, compare_at_price: f64, inventory_quantity: i64,
    }
}

raw_table! {
    /// A media item (image, video, external video, 3D model) of a product version.
    MediaRow, MediaBuf, RawEntity::ProductMedia => {
        media_id: i64, product_id: i64, parent_line: i64, media_type: str, alt: str,
    }
}

raw_table! {
    /// One listed membership of a product in a collection, from either side
    /// (a product's `collections`, a collection's `products`, or a REST collect).
    MembershipRow, MembershipBuf, RawEntity::CollectionProducts => {
        collection_id: i64, product_id: i64,
    }
}

raw_table! {
    /// A version of a collection (custom or smart).
    CollectionRow, CollectionBuf, RawEntity::Collections => {
        collection_id: i64, deleted: bool, title: str, handle: str, description: str,
        description_html: str, sort_order: str, seo_title: str, seo_description: str,
        image_url: str, image_alt: str, is_automated: bool, updated_at: ts,
    }
}

raw_table! {
    /// A version of a customer.
    CustomerRow, CustomerBuf, RawEntity::Customers => {
        customer_id: i64, deleted: bool, email: str, first_name: str, last_name: str,
        state: str, verified_email: bool, tax_exempt: bool, tags: strs, locale: str,
        created_at: ts, updated_at: ts, number_of_orders: i64, amount_spent: f64,
        country_code: str, province_code: str, city: str, marketing_state: str,
    }
}

raw_table! {
    /// A version of an order.
    OrderRow, OrderBuf, RawEntity::Orders => {
        order_id: i64, deleted: bool, name: str, customer_id: i64, created_at: ts,
        processed_at: ts, updated_at: ts, cancelled_at: ts, cancel_reason: str,
        test: bool, financial_status: str, fulfillment_status: str, currency: str,
        source_name: str, tags: strs, discount_codes: strs, total_price: f64,
        subtotal_price: f64, total_discounts: f64, total_tax: f64,
        total_shipping: f64, total_refunded: f64, country_code: str,
        province_code: str,
    }
}

raw_table! {
    /// A line of order `order_id` in the same file (see variants for how it is
    /// attached). `product_id` is null for a custom line item.
    LineItemRow, LineItemBuf, RawEntity::LineItems => {
        line_item_id: i64, order_id: i64, parent_line: i64, product_id: i64,
        variant_id: i64, title: str, sku: str, vendor: str, quantity: i64,
        unit_price: f64, discount: f64,
    }
}

raw_table! {
    /// A refunded line, as one occurrence of its refund (inline in an order version
    /// or a `refunds/create` payload).
    RefundLineRow, RefundLineBuf, RawEntity::RefundLineItems => {
        refund_id: i64, order_id: i64, refund_created_at: ts, line_item_id: i64,
        quantity: i64, subtotal: f64,
    }
}

raw_table! {
    /// A storefront web-pixel event with the ids it mentions.
    EventRow, EventBuf, RawEntity::Events => {
        event_id: str, name: str, client_id: str, timestamp: ts, event_customer_id: i64,
        product_id: i64, variant_id: i64, collection_id: i64, order_id: i64,
        search_query: str, product_ids: ids, url: str, path: str, referrer: str,
        user_agent: str,
    }
}

/// One buffer per raw table.
#[derive(Default)]
pub struct RawBuffers {
    pub products: ProductBuf,
    pub variants: VariantBuf,
    pub media: MediaBuf,
    pub memberships: MembershipBuf,
    pub collections: CollectionBuf,
    pub customers: CustomerBuf,
    pub orders: OrderBuf,
    pub line_items: LineItemBuf,
    pub refund_lines: RefundLineBuf,
    pub events: EventBuf,
}

impl RawBuffers {
    /// Bytes of record text buffered across every table.
    pub fn bytes(&mut self) -> usize {
        self.all().iter().map(|b| b.bytes()).sum()
    }

    pub fn all(&mut self) -> [&mut dyn RawBuffer; 10] {
        [
            &mut self.products, &mut self.variants, &mut self.media, &mut self.memberships,
            &mut self.collections, &mut self.customers, &mut self.orders, &mut self.line_items,
            &mut self.refund_lines, &mut self.events,
        ]
    }
}

/// The Parquet schema of a raw entity's snapshots, as an empty frame.
pub fn empty_frame(entity: RawEntity) -> PolarsResult<DataFrame> {
    let mut buffers = RawBuffers::default();
    let buffer = buffers.all().into_iter().find(|b| b.entity() == entity).expect("a buffer per raw entity");
    buffer.take_frame()
}
