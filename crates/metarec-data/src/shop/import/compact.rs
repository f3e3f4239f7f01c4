//! Events as an import holds them: fixed-size records whose texts (users, visits, rankings,
//! context) are numbers into tables that store each distinct text once.
//!
//! A million [`EventRecord`](crate::shop::EventRecord)s would cost some six allocations each and about 150 bytes that
//! sorting moves around; here an event is one `Copy` record, the tables grow only with distinct
//! values (consecutive rows of a ranking repeat the same user, visit and ranking, so the last
//! value is checked before the hash table), and writing `events.jsonl` copies each text's JSON
//! form, escaped once, instead of serialising it again for every line. The lines written are
//! byte for byte what `serde_json` writes for the same records (tested).

use crate::error::DataError;
use crate::shop::EventKind;
#[cfg(test)]
use crate::shop::EventRecord;
use crate::shop::Interner;

/// The number that stands for "no value" in an optional text field.
const NONE: u32 = u32::MAX;

/// Adds another table's texts to `table`; returns where each of its numbers went.
fn absorb(table: &mut Interner, other: &Interner) -> Vec<u32> {
    other.iter().map(|v| table.id(v)).collect()
}

/// Each text as a JSON string, escaped once for all the lines that repeat it.
fn json(table: &Interner) -> Vec<Vec<u8>> {
    table.iter().map(json_string).collect()
}

/// A JSON string literal as `serde_json` writes it.
fn json_string(text: &str) -> Vec<u8> {
    // Serialising a string into a vector cannot fail.
    serde_json::to_vec(text).unwrap_or_default()
}

/// One event: numbers into the tables of [`Events`] and the catalog.
#[derive(Debug, Clone, Copy)]
pub(super) struct Compact {
    pub(super) timestamp_ms: i64,
    pub(super) propensity: Option<f64>,
    pub(super) revenue: Option<f64>,
    /// The item's row in the catalog (or in the catalog derived from the events).
    pub(super) item: u32,
    pub(super) user: u32,
    pub(super) session: u32,
    pub(super) ranking: u32,
    /// The JSON array of the context tokens, or [`NONE`] when there are none.
    pub(super) context: u32,
    pub(super) position: Option<u32>,
    pub(super) quantity: Option<u32>,
    pub(super) kind: EventKind,
}

/// The events of an import.
#[derive(Debug, Clone, Default)]
pub(super) struct Events {
    pub(super) records: Vec<Compact>,
    pub(super) users: Interner,
    pub(super) sessions: Interner,
    pub(super) rankings: Interner,
    /// Context token lists, each stored as its JSON array.
    pub(super) contexts: Interner,
}

/// Maps a number of a later chunk's table to the merged table's.
fn remap(map: &[u32], id: u32) -> u32 {
    if id == NONE {
        NONE
    } else {
        map.get(id as usize).copied().unwrap_or(NONE)
    }
}

impl Events {
    /// Room for `n` events.
    pub(super) fn with_capacity(n: usize) -> Events {
        Events {
            records: Vec::with_capacity(n),
            ..Events::default()
        }
    }

    /// The number of an optional text.
    pub(super) fn optional(table: &mut Interner, text: Option<&str>) -> u32 {
        text.map_or(NONE, |t| table.id(t))
    }

    /// Appends the events of the next chunk of the file; `items` maps its item numbers to the
    /// merged catalog's (`None` when both chunks number items by the same catalog).
    pub(super) fn absorb(&mut self, later: Events, items: Option<&[u32]>) {
        let users = absorb(&mut self.users, &later.users);
        let sessions = absorb(&mut self.sessions, &later.sessions);
        let rankings = absorb(&mut self.rankings, &later.rankings);
        let contexts = absorb(&mut self.contexts, &later.contexts);
        self.records.reserve(later.records.len());
        self.records.extend(later.records.into_iter().map(|mut e| {
            e.user = remap(&users, e.user);
            e.session = remap(&sessions, e.session);
            e.ranking = remap(&rankings, e.ranking);
            e.context = remap(&contexts, e.context);
            if let Some(items) = items {
                e.item = remap(items, e.item);
            }
            e
        }));
    }

    /// Sorts the events stably by time. The (time, index) pairs are sorted and every record
    /// moved once; the index keeps equal times in file order.
    pub(super) fn sort_by_time(&mut self) {
        if self.records.is_sorted_by_key(|e| e.timestamp_ms) {
            return;
        }
        let mut order: Vec<(i64, usize)> = self
            .records
            .iter()
            .enumerate()
            .map(|(i, e)| (e.timestamp_ms, i))
            .collect();
        order.sort_unstable();
        self.records = order.into_iter().map(|(_, i)| self.records[i]).collect();
    }

    /// The events as records (for tests and small shops; an import writes them with
    /// [`Events::writer`]). `item_keys` are the catalog's keys in row order.
    #[cfg(test)]
    pub(super) fn to_records(&self, item_keys: &[String]) -> Vec<EventRecord> {
        let text = |t: &Interner, id: u32| (id != NONE).then(|| t.get(id).unwrap_or("").to_owned());
        self.records
            .iter()
            .map(|e| EventRecord {
                user: text(&self.users, e.user).unwrap_or_default(),
                item: item_keys[e.item as usize].clone(),
                timestamp_ms: e.timestamp_ms,
                kind: e.kind,
                session: text(&self.sessions, e.session),
                ranking: text(&self.rankings, e.ranking),
                position: e.position,
                propensity: e.propensity,
                quantity: e.quantity,
                revenue: e.revenue,
                context: text(&self.contexts, e.context)
                    .map(|json| serde_json::from_str(&json).unwrap_or_default())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// What writes the events as JSON lines, with the item keys of the catalog in row order.
    pub(super) fn writer<'a>(&'a self, item_keys: impl Iterator<Item = &'a str>) -> LineWriter<'a> {
        LineWriter {
            events: self,
            items: item_keys.map(json_string).collect(),
            users: json(&self.users),
            sessions: json(&self.sessions),
            rankings: json(&self.rankings),
        }
    }
}

/// Writes [`Events`] as the lines of `events.jsonl`.
pub(super) struct LineWriter<'a> {
    events: &'a Events,
    items: Vec<Vec<u8>>,
    users: Vec<Vec<u8>>,
    sessions: Vec<Vec<u8>>,
    rankings: Vec<Vec<u8>>,
}

impl LineWriter<'_> {
    /// How many lines there are.
    pub(super) fn len(&self) -> usize {
        self.events.records.len()
    }

    /// Appends lines `range` to `out`, each as `serde_json` writes the
    /// [`EventLine`](crate::shop::EventLine) of the event.
    pub(super) fn write(
        &self,
        range: std::ops::Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        let missing = |what: &str| DataError::Malformed {
            path: "<events>".into(),
            line: 0,
            field: what.to_owned(),
            reason: "an event refers to a value the import did not record".into(),
        };
        let number = |out: &mut Vec<u8>, v: f64| {
            serde_json::to_writer(&mut *out, &v).map_err(|e| missing(&e.to_string()))
        };
        let optional = |out: &mut Vec<u8>, texts: &[Vec<u8>], id: u32, what: &str| {
            out.push(b',');
            if id == NONE {
                out.extend_from_slice(b"null");
                return Ok(());
            }
            let text = texts.get(id as usize).ok_or_else(|| missing(what))?;
            out.extend_from_slice(text);
            Ok(())
        };
        let integer = |out: &mut Vec<u8>, v: Option<u32>| {
            out.push(b',');
            match v {
                Some(v) => out.extend_from_slice(Digits::new(i64::from(v)).bytes()),
                None => out.extend_from_slice(b"null"),
            }
        };
        let float = |out: &mut Vec<u8>, v: Option<f64>| {
            out.push(b',');
            match v {
                Some(v) => number(out, v),
                None => {
                    out.extend_from_slice(b"null");
                    Ok(())
                }
            }
        };
        for e in &self.events.records[range] {
            out.push(b'[');
            let user = self
                .users
                .get(e.user as usize)
                .ok_or_else(|| missing("user"))?;
            out.extend_from_slice(user);
            out.push(b',');
            let item = self
                .items
                .get(e.item as usize)
                .ok_or_else(|| missing("item"))?;
            out.extend_from_slice(item);
            out.push(b',');
            out.extend_from_slice(Digits::new(e.timestamp_ms).bytes());
            out.extend_from_slice(b",\"");
            out.extend_from_slice(e.kind.as_str().as_bytes());
            out.push(b'"');
            optional(out, &self.sessions, e.session, "session")?;
            optional(out, &self.rankings, e.ranking, "ranking")?;
            integer(out, e.position);
            float(out, e.propensity)?;
            integer(out, e.quantity);
            float(out, e.revenue)?;
            out.push(b',');
            if e.context == NONE {
                out.extend_from_slice(b"[]");
            } else {
                let c = self.events.contexts.get(e.context);
                out.extend_from_slice(c.ok_or_else(|| missing("context"))?.as_bytes());
            }
            out.extend_from_slice(b"]\n");
        }
        Ok(())
    }
}

/// An integer in decimal, written without the formatting machinery (this runs for several
/// fields of a million lines).
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn new(v: i64) -> Digits {
        let mut buf = [0u8; 20];
        let mut at = buf.len();
        let mut rest = v.unsigned_abs();
        loop {
            at -= 1;
            buf[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if v < 0 {
            at -= 1;
            buf[at] = b'-';
        }
        Digits { buf, start: at }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events holding `records`, numbered as an import numbers them.
    fn compact(records: &[EventRecord], keys: &[String]) -> Events {
        let mut events = Events::default();
        for r in records {
            let context =
                (!r.context.is_empty()).then(|| serde_json::to_string(&r.context).unwrap());
            let record = Compact {
                timestamp_ms: r.timestamp_ms,
                propensity: r.propensity,
                revenue: r.revenue,
                item: keys.iter().position(|k| *k == r.item).unwrap() as u32,
                user: events.users.id(&r.user),
                session: Events::optional(&mut events.sessions, r.session.as_deref()),
                ranking: Events::optional(&mut events.rankings, r.ranking.as_deref()),
                context: Events::optional(&mut events.contexts, context.as_deref()),
                position: r.position,
                quantity: r.quantity,
                kind: r.kind,
            };
            events.records.push(record);
        }
        events
    }

    fn event(user: &str, item: &str, t: i64) -> EventRecord {
        EventRecord {
            user: user.into(),
            item: item.into(),
            timestamp_ms: t,
            kind: EventKind::View,
            session: None,
            ranking: None,
            position: None,
            propensity: None,
            quantity: None,
            revenue: None,
            context: Vec::new(),
        }
    }

    fn records() -> (Vec<EventRecord>, Vec<String>) {
        let keys: Vec<String> = vec!["A\"1".into(), "B\\2".into(), "é\u{1}🙂".into()];
        let mut r = vec![
            event("u\"1", "A\"1", 1_700_000_000_000),
            event("u\"1", "B\\2", 1_700_000_000_000),
            event("ü\n2", "é\u{1}🙂", -62_135_596_800_000),
            event("u3", "A\"1", 0),
            event("u\"1", "A\"1", i64::MAX),
        ];
        r[0].session = Some("s\t1".into());
        r[0].ranking = Some("r1".into());
        r[0].position = Some(0);
        r[0].propensity = Some(0.00002);
        r[0].context = vec!["device=desk\"top".into(), "page=home".into()];
        r[1].session = Some("s\t1".into());
        r[1].ranking = Some("r1".into());
        r[1].position = Some(u32::MAX);
        r[1].propensity = Some(1.0);
        r[1].context = vec!["device=desk\"top".into(), "page=home".into()];
        r[2].kind = EventKind::Purchase;
        r[2].quantity = Some(3);
        r[2].revenue = Some(0.1 + 0.2);
        r[3].kind = EventKind::AddToCart;
        r[3].revenue = Some(1e21);
        r[3].context = vec!["x=".into()];
        r[4].kind = EventKind::Click;
        (r, keys)
    }

    fn lines(events: &Events, keys: &[String]) -> String {
        let writer = events.writer(keys.iter().map(String::as_str));
        let mut out = Vec::new();
        writer.write(0..writer.len(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_are_byte_for_byte_what_serde_json_writes() {
        let (records, keys) = records();
        let events = compact(&records, &keys);
        let mut expected = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut expected, &crate::shop::EventLine(r)).unwrap();
            expected.push(b'\n');
        }
        assert_eq!(lines(&events, &keys), String::from_utf8(expected).unwrap());
        assert_eq!(events.to_records(&keys), records);
    }

    #[test]
    fn merged_chunks_renumber_their_texts() {
        let (records, keys) = records();
        let mut first = compact(&records[..2], &keys);
        let second = compact(&records[2..], &keys);
        first.absorb(second, None);
        assert_eq!(first.to_records(&keys), records);
        assert_eq!(first.users.len(), 3, "a user of both chunks is stored once");
        // Renumbered items: the later chunk's item 0 is the merged catalog's item 2.
        let mut first = compact(&records[..1], &keys);
        let mut second = compact(&records[2..3], &keys);
        second.records[0].item = 0;
        first.absorb(second, Some(&[2]));
        assert_eq!(
            first.to_records(&keys),
            records[..1]
                .iter()
                .chain(&records[2..3])
                .cloned()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn sorting_by_time_keeps_equal_times_in_file_order() {
        let (records, keys) = records();
        let mut events = compact(&records, &keys);
        events.sort_by_time();
        let mut expected = records.clone();
        expected.sort_by_key(|e| e.timestamp_ms);
        assert_eq!(events.to_records(&keys), expected);
    }

    #[test]
    fn digits_are_the_decimal_spelling() {
        for v in [0, 7, -7, 10, 1_767_225_874_598, i64::MAX, i64::MIN, -1] {
            assert_eq!(Digits::new(v).bytes(), v.to_string().as_bytes());
        }
    }
}
