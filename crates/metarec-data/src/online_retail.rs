//! The UCI Online Retail data set: every invoice line of a UK online shop, December 2010 to
//! December 2011 (CC BY 4.0; Chen, Sain & Guo 2012).
//!
//! [`load_online_retail`] applies the standard cleaning (cancellations, guest rows and
//! non-positive quantities or prices are skipped and counted), drops the lines whose stock code
//! is not a product (postage, fees, adjustments, vouchers: see [`NON_PRODUCT_CODES`]), and builds
//! [`OnlineRetail`]: a [`Catalog`] (stock code -> most common title and median price), the
//! customers with their countries, and timestamped [`Purchase`] lines.

use crate::error::DataError;
use crate::report::{LoadOptions, LoadReport};
use crate::table::{
    Dialect, Row, Table, count_lines, handle_malformed, read_file, reader_threads, split_records,
};
use crate::time::parse_datetime_ms;
use metarec_core::{Catalog, Item, ItemId, UserKey};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// The file name of the data set inside its data directory.
pub const FILE_NAME: &str = "online_retail.csv";

/// Skip reason: invoice numbers starting with `C` are cancellations.
pub const SKIP_CANCELLATION: &str = "cancellation";
/// Skip reason: rows without a CustomerID are guest checkouts.
pub const SKIP_GUEST: &str = "guest (no CustomerID)";
/// Skip reason: returns and corrections have a quantity of zero or less.
pub const SKIP_QUANTITY: &str = "non-positive quantity";
/// Skip reason: products given away have a price of zero or less (adjustments and bad-debt
/// entries, which also do, are counted as non-product lines first).
pub const SKIP_PRICE: &str = "non-positive price";

/// Skip reason: postage charged per order (`POST`, and `DOT` for the dotcom shop's orders).
pub const SKIP_POSTAGE: &str = "non-product: postage";
/// Skip reason: carriage charged per order (`C2`, and `23444` for next-day carriage).
pub const SKIP_CARRIAGE: &str = "non-product: carriage";
/// Skip reason: a packing charge per order (`23574`).
pub const SKIP_PACKING: &str = "non-product: packing charge";
/// Skip reason: manually keyed lines (`M`) that stand for whatever was sold at whatever price.
pub const SKIP_MANUAL: &str = "non-product: manual entry";
/// Skip reason: bank charges passed on to the customer (`BANK CHARGES`).
pub const SKIP_BANK_CHARGES: &str = "non-product: bank charges";
/// Skip reason: marketplace fees and charity commission (`AMAZONFEE`, `CRUK`).
pub const SKIP_FEE: &str = "non-product: fee";
/// Skip reason: discounts given on an order (`D`, on cancellation invoices).
pub const SKIP_DISCOUNT: &str = "non-product: discount";
/// Skip reason: refunds for samples (`S`, nearly all on cancellation invoices).
pub const SKIP_SAMPLES: &str = "non-product: samples";
/// Skip reason: dotcom shop gift vouchers (`gift_0001_10` to `gift_0001_50`).
pub const SKIP_GIFT_VOUCHER: &str = "non-product: gift voucher";
/// Skip reason: bad-debt write-offs (`B`, on the `A` invoices).
pub const SKIP_BAD_DEBT: &str = "non-product: bad debt";
/// Skip reason: high-resolution product photographs, sold as files (`23702`).
pub const SKIP_IMAGE: &str = "non-product: image licence";
/// Skip reason: cushion pads added to cushion orders at a token £0.001 (`PADS`).
pub const SKIP_FREE_PADS: &str = "non-product: free pads";

/// The stock codes that are not products, each with the skip reason its lines are counted
/// under; compared without regard to ASCII case, since `M` also appears as `m`. Gift vouchers
/// (`gift_...`) are matched by prefix in [`non_product_reason`].
///
/// The list comes from reading every stock code of the file that is not the shop's usual five
/// digits with an optional letter suffix, plus the product-shaped codes whose titles name a
/// service. Recommending any of these would mean recommending a charge, a refund or a
/// bookkeeping entry; their prices (£18 postage, £50 carriage, Amazon fees in the thousands)
/// would also distort price statistics and the simulator's price model. Every line of the file
/// with one of these codes, with the median of its positive prices:
///
/// | code | title | lines | why it is not a product |
/// |---|---|---|---|
/// | `POST` | POSTAGE | 1,256 | postage per order (mostly to Germany and France), £18 |
/// | `DOT` | DOTCOM POSTAGE | 710 | the dotcom shop's postage per order, £185 |
/// | `C2` | CARRIAGE | 144 | carriage per order (mostly to Ireland), £50 |
/// | `23444` | Next Day Carriage | 81 | next-day delivery at £15, under a product-shaped code |
/// | `23574` | PACKING CHARGE | 17 | a packing charge of £7.50, under a product-shaped code |
/// | `M`, `m` | Manual | 572 | keyed by hand: any goods at any price (3p to £38,970) |
/// | `BANK CHARGES` | Bank Charges | 37 | bank charges passed on to the customer, £83 |
/// | `AMAZONFEE` | AMAZON FEE | 34 | the marketplace's fees, £5,910, nearly all cancellations |
/// | `CRUK` | CRUK Commission | 16 | commission to Cancer Research UK, all cancellations |
/// | `D` | Discount | 77 | discounts, all on cancellation invoices |
/// | `S` | SAMPLES | 63 | refunds for samples, 61 on cancellation invoices |
/// | `gift_0001_*` | Dotcomgiftshop Gift Voucher | 34 | vouchers are money, not goods |
/// | `B` | Adjust bad debt | 3 | bad-debt write-offs of £11,062 (the `A` invoices) |
/// | `23702` | High Resolution Image | 4 | product photographs: a file, not goods |
/// | `PADS` | PADS TO MATCH ALL CUSHIONS | 4 | pads sent with cushion orders at a token £0.001 |
///
/// The other unusual codes are products and stay: `DCGS0003` (BOXED GLASS ASHTRAY) and the
/// other `DCGS...` codes are the dotcom shop's own numbering for goods, and `DCGSSBOY` and
/// `DCGSSGIRL` are party bags. All their lines are guest checkouts, so none of them reaches the
/// cleaned catalog anyway.
pub const NON_PRODUCT_CODES: &[(&str, &str)] = &[
    ("POST", SKIP_POSTAGE),
    ("DOT", SKIP_POSTAGE),
    ("C2", SKIP_CARRIAGE),
    ("23444", SKIP_CARRIAGE),
    ("23574", SKIP_PACKING),
    ("M", SKIP_MANUAL),
    ("BANK CHARGES", SKIP_BANK_CHARGES),
    ("AMAZONFEE", SKIP_FEE),
    ("CRUK", SKIP_FEE),
    ("D", SKIP_DISCOUNT),
    ("S", SKIP_SAMPLES),
    ("B", SKIP_BAD_DEBT),
    ("23702", SKIP_IMAGE),
    ("PADS", SKIP_FREE_PADS),
];

/// The prefix of the gift voucher codes (`gift_0001_10` is a £10 voucher).
const GIFT_VOUCHER_PREFIX: &str = "gift_";

/// The skip reason for a stock code that is not a product, or `None` for a product.
pub fn non_product_reason(stock_code: &str) -> Option<&'static str> {
    if let Some((_, reason)) = NON_PRODUCT_CODES
        .iter()
        .find(|(code, _)| code.eq_ignore_ascii_case(stock_code))
    {
        return Some(reason);
    }
    let prefix = stock_code.get(..GIFT_VOUCHER_PREFIX.len())?;
    prefix
        .eq_ignore_ascii_case(GIFT_VOUCHER_PREFIX)
        .then_some(SKIP_GIFT_VOUCHER)
}

/// A customer of the shop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    /// The CustomerID as a string without the trailing `.0` of the source.
    pub key: UserKey,
    /// The country of most of the customer's purchase lines (ties: alphabetically first).
    pub country: String,
}

/// One cleaned invoice line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Purchase {
    /// Index into [`OnlineRetail::customers`].
    pub customer: u32,
    /// The product.
    pub item: ItemId,
    /// The invoice number (digits only).
    pub invoice: u32,
    /// Invoice time in milliseconds since the epoch (the source's local UK time, read as UTC).
    pub timestamp_ms: i64,
    /// Units bought, at least 1.
    pub quantity: u32,
    /// Price per unit in pounds sterling, above 0.
    pub unit_price: f32,
}

impl Purchase {
    /// Revenue of the line: quantity times unit price.
    pub fn revenue(&self) -> f64 {
        f64::from(self.quantity) * f64::from(self.unit_price)
    }
}

/// The cleaned Online Retail data set.
///
/// Invariants: purchases are in file order (which is time order); every purchase's `customer`
/// indexes `customers` and its `item` indexes `catalog`; customers and items are numbered in
/// order of first appearance among kept lines.
#[derive(Debug, Clone)]
pub struct OnlineRetail {
    /// One item per product stock code with at least one kept line.
    pub catalog: Catalog,
    /// Customers with at least one kept line.
    pub customers: Vec<Customer>,
    /// Kept invoice lines.
    pub purchases: Vec<Purchase>,
    /// What was read, kept and skipped.
    pub report: LoadReport,
}

struct Columns {
    invoice: usize,
    stock_code: usize,
    description: usize,
    quantity: usize,
    date: usize,
    price: usize,
    customer: usize,
    country: usize,
}

/// Loads and cleans the CSV file at `path`.
pub fn load_online_retail(path: &Path, options: &LoadOptions) -> Result<OnlineRetail, DataError> {
    let bytes = read_file(path)?;
    parse_online_retail(&bytes, path, options)
}

/// Parses and cleans Online Retail CSV content; `path` names the source in errors.
///
/// Large inputs are cut at record boundaries and scanned on several threads; the chunks are
/// merged in file order, so ids, titles and counts are the same as a sequential scan's.
pub fn parse_online_retail(
    bytes: &[u8],
    path: &Path,
    options: &LoadOptions,
) -> Result<OnlineRetail, DataError> {
    let table = Table::new(path, bytes, Dialect::Csv)?;
    let cols = Columns {
        invoice: table.column("InvoiceNo")?,
        stock_code: table.column("StockCode")?,
        description: table.column("Description")?,
        quantity: table.column("Quantity")?,
        date: table.column("InvoiceDate")?,
        price: table.column("UnitPrice")?,
        customer: table.column("CustomerID")?,
        country: table.column("Country")?,
    };
    let data_start = table.data_start();
    let body = &bytes[data_start..];
    let chunks = split_records(body, reader_threads(body.len()));
    let mut offsets = Vec::with_capacity(chunks.len());
    let mut lines = count_lines(&bytes[..data_start]);
    for chunk in &chunks {
        offsets.push(lines);
        lines += count_lines(chunk);
    }
    let results: Vec<Result<Chunk, DataError>> = if chunks.len() == 1 {
        vec![scan(
            table.continuation(chunks[0], offsets[0]),
            &cols,
            options,
        )]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .iter()
                .zip(&offsets)
                .map(|(chunk, &offset)| {
                    let t = table.continuation(chunk, offset);
                    let cols = &cols;
                    scope.spawn(move || scan(t, cols, options))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a loader thread panicked"))
                .collect()
        })
    };
    let mut merged = Chunk::default();
    let mut report = LoadReport::new(path.display().to_string());
    for result in results {
        // The first error in file order wins, as in a sequential scan.
        let chunk = result?;
        report.absorb(&chunk.report);
        merged.absorb(chunk);
    }
    merged.finish(path, report)
}

/// What one scanned chunk of the file holds, with ids local to the chunk (first appearance).
#[derive(Default)]
struct Chunk {
    report: LoadReport,
    item_index: HashMap<String, u32>,
    item_keys: Vec<String>,
    item_prices: Vec<Vec<f32>>,
    /// Per item: distinct titles and how often each was seen.
    item_titles: Vec<Vec<(Box<str>, u32)>>,
    customer_index: HashMap<u32, u32>,
    customer_ids: Vec<u32>,
    /// Per customer: distinct countries and how often each was seen.
    customer_countries: Vec<Vec<(String, u32)>>,
    purchases: Vec<Purchase>,
}

fn scan(mut table: Table<'_>, cols: &Columns, options: &LoadOptions) -> Result<Chunk, DataError> {
    let mut c = Chunk {
        report: LoadReport::new(""),
        ..Chunk::default()
    };
    while let Some(row) = table.next_row()? {
        let line = match parse_row(&row, cols) {
            Ok(Parsed::Line(l)) => l,
            Ok(Parsed::Skip(reason)) => {
                c.report.skip(reason);
                continue;
            }
            Err(e) => {
                handle_malformed(e, options, &mut c.report)?;
                continue;
            }
        };
        let item = c.item(line.stock_code);
        c.item_prices[item as usize].push(line.unit_price);
        if !line.description.is_empty() {
            add_count(&mut c.item_titles[item as usize], line.description, 1);
        }
        let customer = c.customer(line.customer);
        add_count(
            &mut c.customer_countries[customer as usize],
            line.country,
            1,
        );
        c.purchases.push(Purchase {
            customer,
            item: ItemId(item),
            invoice: line.invoice,
            timestamp_ms: line.timestamp_ms,
            quantity: line.quantity,
            unit_price: line.unit_price,
        });
        c.report.keep();
    }
    Ok(c)
}

/// Adds `n` to the count of `value`. The lists are short (most items have one or two titles),
/// so a linear scan is cheaper than hashing the text on every line.
fn add_count<T: AsRef<str> + for<'s> From<&'s str>>(
    counts: &mut Vec<(T, u32)>,
    value: &str,
    n: u32,
) {
    match counts.iter_mut().find(|(v, _)| v.as_ref() == value) {
        Some((_, c)) => *c += n,
        None => counts.push((T::from(value), n)),
    }
}

impl Chunk {
    fn item(&mut self, key: &str) -> u32 {
        if let Some(&i) = self.item_index.get(key) {
            return i;
        }
        let i = self.item_keys.len() as u32;
        self.item_index.insert(key.to_owned(), i);
        self.item_keys.push(key.to_owned());
        self.item_prices.push(Vec::new());
        self.item_titles.push(Vec::new());
        i
    }

    fn customer(&mut self, id: u32) -> u32 {
        if let Some(&c) = self.customer_index.get(&id) {
            return c;
        }
        let c = self.customer_ids.len() as u32;
        self.customer_index.insert(id, c);
        self.customer_ids.push(id);
        self.customer_countries.push(Vec::new());
        c
    }

    /// Appends a later chunk, renumbering its items and customers into this one's ids.
    fn absorb(&mut self, other: Chunk) {
        let item_map: Vec<u32> = other.item_keys.iter().map(|k| self.item(k)).collect();
        for (local, prices) in other.item_prices.into_iter().enumerate() {
            self.item_prices[item_map[local] as usize].extend(prices);
        }
        for (local, titles) in other.item_titles.into_iter().enumerate() {
            let into = &mut self.item_titles[item_map[local] as usize];
            for (t, n) in titles {
                add_count(into, &t, n);
            }
        }
        let customer_map: Vec<u32> = other
            .customer_ids
            .iter()
            .map(|&id| self.customer(id))
            .collect();
        for (local, countries) in other.customer_countries.into_iter().enumerate() {
            let into = &mut self.customer_countries[customer_map[local] as usize];
            for (c, n) in countries {
                add_count(into, &c, n);
            }
        }
        self.purchases
            .extend(other.purchases.into_iter().map(|mut p| {
                p.item = ItemId(item_map[p.item.index()]);
                p.customer = customer_map[p.customer as usize];
                p
            }));
    }

    fn finish(mut self, path: &Path, report: LoadReport) -> Result<OnlineRetail, DataError> {
        let mut catalog = Catalog::new(Vec::new());
        for (i, key) in self.item_keys.into_iter().enumerate() {
            let title = most_common(self.item_titles[i].iter().map(|(t, n)| (&**t, *n)));
            let price = median(&mut self.item_prices[i]);
            catalog
                .push(Item {
                    key,
                    title: title.map(str::to_owned),
                    category: None,
                    price: Some(price),
                    features: Vec::new(),
                    embedding: None,
                })
                .map_err(|source| DataError::Invalid {
                    path: path.to_owned(),
                    line: 0,
                    source,
                })?;
        }
        let customers = self
            .customer_ids
            .iter()
            .zip(&self.customer_countries)
            .map(|(id, countries)| Customer {
                key: UserKey(id.to_string()),
                country: most_common(countries.iter().map(|(c, n)| (c.as_str(), *n)))
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect();
        Ok(OnlineRetail {
            catalog,
            customers,
            purchases: self.purchases,
            report,
        })
    }
}

/// The most frequent value; ties go to the alphabetically first so the result does not depend
/// on file order.
fn most_common<'a>(counts: impl Iterator<Item = (&'a str, u32)>) -> Option<&'a str> {
    counts
        .max_by(|(a, na), (b, nb)| na.cmp(nb).then_with(|| b.cmp(a)))
        .map(|(s, _)| s)
}

/// The median (mean of the middle two for an even count); 0 for an empty slice.
fn median(values: &mut [f32]) -> f32 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let mid = n / 2;
    let (lower, m, _) = values.select_nth_unstable_by(mid, f32::total_cmp);
    let m = *m;
    if n % 2 == 1 {
        m
    } else {
        let below = lower.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (below + m) / 2.0
    }
}

struct Line<'r> {
    invoice: u32,
    stock_code: &'r str,
    description: &'r str,
    quantity: u32,
    timestamp_ms: i64,
    unit_price: f32,
    customer: u32,
    country: &'r str,
}

enum Parsed<'r> {
    Line(Line<'r>),
    Skip(&'static str),
}

/// Parses one row. Every field is checked before the cleaning rules are applied, so that a
/// malformed row is reported as such even when the rules would have dropped it.
fn parse_row<'r>(row: &Row<'r>, c: &Columns) -> Result<Parsed<'r>, DataError> {
    row.check_width()?;
    let invoice_raw = row.trimmed(c.invoice);
    let (cancelled, digits) = match invoice_raw.first() {
        Some(b'C' | b'c') => (true, &invoice_raw[1..]),
        // "A" invoices are bad-debt adjustments; their stock code `B` is not a product, so the
        // non-product rule drops them.
        Some(b'A'..=b'Z' | b'a'..=b'z') => (false, &invoice_raw[1..]),
        _ => (false, invoice_raw),
    };
    let invoice = parse_u32(digits).ok_or_else(|| {
        row.malformed(
            c.invoice,
            format!(
                "`{}` is not an invoice number (optional letter, then digits)",
                String::from_utf8_lossy(invoice_raw)
            ),
        )
    })?;
    let stock_code = row.required_str(c.stock_code)?;
    let description = row.str(c.description)?;
    let quantity = row.int(c.quantity)?;
    let date = row.trimmed(c.date);
    let timestamp_ms = parse_datetime_ms(date).ok_or_else(|| {
        row.malformed(
            c.date,
            format!(
                "`{}` is not a date-time like 2010-12-01 08:26:00",
                String::from_utf8_lossy(date)
            ),
        )
    })?;
    let unit_price = row.finite_f32(c.price)?;
    let customer_raw = row.trimmed(c.customer);
    let customer = if customer_raw.is_empty() {
        None
    } else {
        Some(parse_customer_id(customer_raw).ok_or_else(|| {
            row.malformed(
                c.customer,
                format!(
                    "`{}` is not a customer number",
                    String::from_utf8_lossy(customer_raw)
                ),
            )
        })?)
    };
    let country = row.str(c.country)?;

    // The stock code says what a line is about, so a line that is not about a product is
    // counted as such whatever else holds for it: a cancelled Amazon fee is a fee, not a
    // cancelled purchase. This also puts every non-product line of the file in the report.
    if let Some(reason) = non_product_reason(stock_code) {
        return Ok(Parsed::Skip(reason));
    }
    if cancelled {
        return Ok(Parsed::Skip(SKIP_CANCELLATION));
    }
    let Some(customer) = customer else {
        return Ok(Parsed::Skip(SKIP_GUEST));
    };
    if quantity <= 0 {
        return Ok(Parsed::Skip(SKIP_QUANTITY));
    }
    if unit_price <= 0.0 {
        return Ok(Parsed::Skip(SKIP_PRICE));
    }
    let quantity = u32::try_from(quantity)
        .map_err(|_| row.malformed(c.quantity, format!("{quantity} is too large")))?;
    Ok(Parsed::Line(Line {
        invoice,
        stock_code,
        description,
        quantity,
        timestamp_ms,
        unit_price,
        customer,
        country,
    }))
}

/// A non-empty run of ASCII digits that fits a `u32`.
fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u32, |v, &d| {
        v.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// Customer numbers are written as floats (`17850.0`) in the source; accept an integer with an
/// optional all-zero fraction.
fn parse_customer_id(s: &[u8]) -> Option<u32> {
    let int = match s.iter().position(|&b| b == b'.') {
        Some(dot) if s[dot + 1..].iter().all(|&b| b == b'0') => &s[..dot],
        Some(_) => return None,
        None => s,
    };
    parse_u32(int)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mode_are_deterministic() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
        let counts = [("b", 2), ("a", 2), ("c", 1)];
        assert_eq!(most_common(counts.into_iter()), Some("a"));
    }

    fn line(invoice: &str, code: &str, title: &str, quantity: i32, price: f32) -> String {
        format!("{invoice},{code},{title},{quantity},2011-05-26 16:11:00,{price},15241.0,EIRE\n")
    }

    #[test]
    fn non_product_lines_are_skipped_by_reason_before_the_other_rules() {
        let mut text =
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
                .to_owned();
        for (code, _) in NON_PRODUCT_CODES {
            text += &line("554835", code, "a charge", 1, 15.0);
        }
        // Lower case, a voucher, and a cancelled fee (a fee, not a cancelled purchase).
        text += &line("554835", "m", "Manual", 1, 2.55);
        text += &line("554835", "post", "POSTAGE", 1, 18.0);
        text += &line("554835", "gift_0001_20", "Gift Voucher", 1, 16.67);
        text += &line("C554836", "AMAZONFEE", "AMAZON FEE", -1, 5519.25);
        // Products, some with a service word in the title or a code close to a listed one.
        text += &line("554835", "23099", "FRENCH CARRIAGE LANTERN", 2, 4.95);
        text += &line("554835", "23445", "ICE CREAM BUBBLES", 20, 0.83);
        text += &line("554835", "DCGS0003", "BOXED GLASS ASHTRAY", 1, 2.46);
        text += &line("554835", "GIFT", "GIFT BAG", 1, 0.5);
        let or = parse_online_retail(text.as_bytes(), Path::new("t.csv"), &LoadOptions::default())
            .unwrap();

        let keys: Vec<&str> = or.catalog.ids().filter_map(|i| or.catalog.key(i)).collect();
        assert_eq!(keys, ["23099", "23445", "DCGS0003", "GIFT"]);
        let r = &or.report;
        assert_eq!((r.records, r.kept), (22, 4));
        assert_eq!(r.skipped.get(SKIP_POSTAGE), Some(&3), "{r}");
        assert_eq!(r.skipped.get(SKIP_CARRIAGE), Some(&2), "{r}");
        assert_eq!(r.skipped.get(SKIP_MANUAL), Some(&2), "{r}");
        assert_eq!(r.skipped.get(SKIP_FEE), Some(&3), "{r}");
        assert_eq!(r.skipped.get(SKIP_GIFT_VOUCHER), Some(&1), "{r}");
        for reason in [
            SKIP_PACKING,
            SKIP_BANK_CHARGES,
            SKIP_DISCOUNT,
            SKIP_SAMPLES,
            SKIP_BAD_DEBT,
            SKIP_IMAGE,
            SKIP_FREE_PADS,
        ] {
            assert_eq!(r.skipped.get(reason), Some(&1), "{reason}: {r}");
        }
        assert_eq!(r.skipped.get(SKIP_CANCELLATION), None, "{r}");
    }

    #[test]
    fn a_malformed_non_product_line_is_reported_as_malformed() {
        let text = format!(
            "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n{}",
            line("554835", "POST", "POSTAGE", 1, 18.0).replace(",1,", ",one,")
        );
        let err = parse_online_retail(text.as_bytes(), Path::new("t.csv"), &LoadOptions::default())
            .unwrap_err();
        assert!(
            err.to_string().contains("line 2: field `Quantity`"),
            "{err}"
        );
    }

    #[test]
    fn customer_ids_accept_the_float_spelling_only_when_integral() {
        assert_eq!(parse_customer_id(b"17850.0"), Some(17850));
        assert_eq!(parse_customer_id(b"17850"), Some(17850));
        assert_eq!(parse_customer_id(b"17850.5"), None);
        assert_eq!(parse_customer_id(b"abc"), None);
        assert_eq!(parse_customer_id(b".0"), None);
        assert_eq!(parse_customer_id(b"99999999999"), None);
    }
}
