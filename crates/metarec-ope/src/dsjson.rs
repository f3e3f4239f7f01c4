//! Vowpal Wabbit's decision-service JSON (DSJSON): export and import of the interaction log, so
//! that logs move between metarec and VW's tools.
//!
//! One line per [`Interaction`], in VW's conditional contextual bandit (slates) layout:
//! `c._multi` lists the slate's items as actions (`{"item": {"id": "<item key>"}}`, the
//! catalog's key, as in the interaction log), `c._slots` one
//! slot per slate entry (`_id` = the display position), and `_outcomes` one outcome per slot with
//! `_a` (the chosen action's index in `_multi`), `_p` (its logging propensity) and `_label_cost`
//! (minus the entry's reward under the exporter's [`RewardFn`], VW minimising cost). The context's
//! tokens `name=value` go to the namespace `c.user` and its dense features to `c.x`; `EventId`,
//! `Timestamp` (ISO 8601, UTC) and `VWState.m` (the model version) are VW's own fields.
//!
//! VW ignores fields it does not know, so each line also carries `_metarec`: the catalog's
//! fingerprint (`catalog`), the exact context (items as keys), policy id, slate propensity and
//! feedback, which makes export then import lossless. The fingerprint sits on every line rather
//! than in a header line, because VW's tools read every line as an event. Lines without
//! `_metarec` (written by VW's tools) are read from VW's fields alone, in either the slates
//! layout above or VW's single-action contextual-bandit layout (`_label_cost`,
//! `_label_probability`, `_labelIndex` into `c._multi`, shown at position 0); a click is then a
//! negative cost.
//!
//! Reading and writing take the [`Catalog`] the keys belong to: an action's `item.id` must be one
//! of its keys (an action without one is the catalog's item at the action's index), and an
//! unknown key is an error naming the line, saying so too when the line's fingerprint names
//! another catalog.
//!
//! Every malformed line is an [`OpeError::Format`] naming the line; nothing is skipped.

use crate::error::OpeError;
use metarec_core::{
    Catalog, Context, Decision, EventId, Feedback, Interaction, ItemId, RewardFn, SessionState,
    Slate,
};
use metarec_data::time::{format_ms, parse_datetime_ms};
use serde_json::{Map, Value, json};
use std::io::{BufRead, Write};

/// Writes one interaction as a DSJSON line (with its newline); an item `catalog` lacks is an
/// `InvalidData` error.
pub fn write_line<W: Write>(
    out: &mut W,
    interaction: &Interaction,
    reward: &RewardFn,
    catalog: &Catalog,
) -> std::io::Result<()> {
    let value = to_value(interaction, reward, catalog)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    serde_json::to_writer(&mut *out, &value)?;
    out.write_all(b"\n")
}

/// The key of an item of `catalog`, or why it has none.
fn key_of(catalog: &Catalog, item: ItemId) -> Result<&str, String> {
    catalog.key(item).ok_or_else(|| {
        format!(
            "item {} is not in the catalog of {} items",
            item.0,
            catalog.len()
        )
    })
}

/// The DSJSON object of one interaction, items named by `catalog`'s keys; an item the catalog
/// lacks is an error naming the event. Each call hashes the whole catalog for its fingerprint;
/// [`write_file`] does that once per file.
pub fn to_value(
    interaction: &Interaction,
    reward: &RewardFn,
    catalog: &Catalog,
) -> Result<Value, String> {
    value_of(interaction, reward, catalog, &catalog.fingerprint())
}

/// [`to_value`] with the catalog's fingerprint already computed.
fn value_of(
    interaction: &Interaction,
    reward: &RewardFn,
    catalog: &Catalog,
    fingerprint: &str,
) -> Result<Value, String> {
    let event = |e: String| format!("event `{}`: {e}", interaction.decision.event_id.0);
    let (c, d, f) = (
        &interaction.context,
        &interaction.decision,
        &interaction.feedback,
    );
    let mut user = Map::new();
    for t in &c.tokens {
        match t.split_once('=') {
            Some((name, value)) => user.insert(name.to_owned(), Value::String(value.to_owned())),
            None => user.insert(t.clone(), Value::Bool(true)),
        };
    }
    let multi: Vec<Value> = d
        .slate
        .items()
        .iter()
        .map(|&i| Ok(json!({ "item": { "id": key_of(catalog, i)? } })))
        .collect::<Result<_, String>>()
        .map_err(event)?;
    let slots: Vec<Value> = (0..d.slate.len())
        .map(|k| json!({ "_id": d.position(k).to_string() }))
        .collect();
    let outcomes: Vec<Value> = d
        .entries()
        .enumerate()
        .map(|(k, (position, _, p))| {
            let r = reward.entry_reward(f.clicks[k], f.purchases[k], f.revenue[k]);
            json!({
                "_id": position.to_string(),
                "_label_cost": -r,
                "_a": [k],
                "_p": [p],
                "_o": [],
            })
        })
        .collect();
    let mut context = Map::new();
    context.insert("user".into(), Value::Object(user));
    if !c.features.is_empty() {
        context.insert("x".into(), json!(c.features));
    }
    context.insert("_multi".into(), Value::Array(multi));
    context.insert("_slots".into(), Value::Array(slots));
    let mut line = Map::new();
    line.insert("EventId".into(), Value::String(d.event_id.0.clone()));
    if let Some(ms) = c.timestamp_ms {
        let text = format_ms(ms).replace(' ', "T");
        line.insert(
            "Timestamp".into(),
            Value::String(format!("{text}.{:03}Z", ms.rem_euclid(1000))),
        );
    }
    line.insert("Version".into(), Value::String("1".into()));
    line.insert("c".into(), Value::Object(context));
    line.insert("_outcomes".into(), Value::Array(outcomes));
    line.insert("VWState".into(), json!({ "m": d.model_version }));
    let mut keyed_context = serde_json::to_value(c).map_err(|e| event(e.to_string()))?;
    metarec_data::log::context_ids_to_keys(&mut keyed_context, catalog).map_err(event)?;
    line.insert(
        "_metarec".into(),
        json!({
            "catalog": fingerprint,
            "context": keyed_context,
            "policy_id": d.policy_id,
            "slate_propensity": d.slate_propensity,
            "feedback": f,
        }),
    );
    Ok(Value::Object(line))
}

/// Writes a whole log as DSJSON to `path`, atomically (beside it, then renamed).
pub fn write_file<'a>(
    path: &std::path::Path,
    interactions: impl IntoIterator<Item = &'a Interaction>,
    reward: &RewardFn,
    catalog: &Catalog,
) -> Result<u64, OpeError> {
    let fingerprint = catalog.fingerprint();
    Ok(metarec_data::log::atomic_write(path, |out| {
        let mut n = 0;
        for i in interactions {
            let value = value_of(i, reward, catalog, &fingerprint)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            serde_json::to_writer(&mut *out, &value)?;
            out.write_all(b"\n")?;
            n += 1;
        }
        Ok(n)
    })?)
}

/// Reads every DSJSON line of `input` (blank lines skipped), items resolved against `catalog`;
/// `source_name` names it in errors.
pub fn read<R: BufRead>(
    input: R,
    source_name: &str,
    catalog: &Catalog,
) -> Result<Vec<Interaction>, OpeError> {
    Ok(read_lines(input, source_name, catalog)?
        .into_iter()
        .map(|(_, i)| i)
        .collect())
}

/// [`read`], each interaction with its 1-based line, so that later checks (the propensity floor
/// of [`crate::LoggedData::from_rows`]) can name the line even past blank lines.
pub fn read_lines<R: BufRead>(
    input: R,
    source_name: &str,
    catalog: &Catalog,
) -> Result<Vec<(usize, Interaction)>, OpeError> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let n = i + 1;
        let fail = |reason: String| OpeError::Format {
            source_name: source_name.to_owned(),
            line: n,
            reason,
        };
        let line = line.map_err(|e| fail(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&line).map_err(|e| fail(format!("not JSON: {e}")))?;
        out.push((n, from_value(&value, catalog).map_err(fail)?));
    }
    Ok(out)
}

/// Reads a DSJSON file against `catalog`.
pub fn read_file(path: &std::path::Path, catalog: &Catalog) -> Result<Vec<Interaction>, OpeError> {
    Ok(read_file_lines(path, catalog)?
        .into_iter()
        .map(|(_, i)| i)
        .collect())
}

/// Reads a DSJSON file against `catalog`, each interaction with its 1-based line.
pub fn read_file_lines(
    path: &std::path::Path,
    catalog: &Catalog,
) -> Result<Vec<(usize, Interaction)>, OpeError> {
    let file = std::fs::File::open(path).map_err(|e| metarec_data::DataError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    read_lines(
        std::io::BufReader::new(file),
        &path.display().to_string(),
        catalog,
    )
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, String> {
    v.get(name).ok_or_else(|| format!("missing field `{name}`"))
}

fn number(v: &Value, name: &str) -> Result<f64, String> {
    field(v, name)?
        .as_f64()
        .ok_or_else(|| format!("field `{name}` is not a number"))
}

/// What an unknown key's error adds when the line's fingerprint names another catalog.
fn other_catalog(v: &Value, catalog: &Catalog) -> String {
    match v
        .get("_metarec")
        .and_then(|m| m.get("catalog"))
        .and_then(Value::as_str)
    {
        Some(fp) if fp != catalog.fingerprint() => format!(
            ": the line was written against another catalog (fingerprint {}) than this one (fingerprint {}, {} items)",
            fp.escape_debug(),
            catalog.fingerprint(),
            catalog.len()
        ),
        _ => String::new(),
    }
}

/// The item of action `index` of `c._multi`: the catalog's item keyed by its `item.id`, else
/// the catalog's item at the action's index.
fn action_item(
    multi: &[Value],
    index: usize,
    catalog: &Catalog,
    other: &dyn Fn() -> String,
) -> Result<ItemId, String> {
    let action = multi.get(index).ok_or_else(|| {
        format!(
            "action {index} is not in `c._multi` ({} actions)",
            multi.len()
        )
    })?;
    match action.get("item").and_then(|i| i.get("id")) {
        Some(Value::String(s)) => catalog.id_of(s).ok_or_else(|| {
            format!(
                "action {index}: item `{}` is not in the catalog{}",
                s.escape_debug(),
                other()
            )
        }),
        Some(other) => Err(format!("action {index}: item id {other} is not a string")),
        None => u32::try_from(index)
            .ok()
            .map(ItemId)
            .filter(|&i| catalog.contains(i))
            .ok_or_else(|| {
                format!(
                    "action {index} names no item and is not an index into the catalog of {} items",
                    catalog.len()
                )
            }),
    }
}

/// One interaction from a DSJSON object, items resolved against `catalog`; the error says what
/// is wrong.
pub fn from_value(v: &Value, catalog: &Catalog) -> Result<Interaction, String> {
    let other = || other_catalog(v, catalog);
    let c = field(v, "c")?;
    let multi = field(c, "_multi")?
        .as_array()
        .ok_or("field `c._multi` is not a list")?;
    let event_id = EventId(
        v.get("EventId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    );
    let model_version = v
        .get("VWState")
        .and_then(|s| s.get("m"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // (item, position, propensity, cost) per entry.
    let mut entries: Vec<(ItemId, u32, f64, f64)> = Vec::new();
    if let Some(outcomes) = v.get("_outcomes") {
        let outcomes = outcomes
            .as_array()
            .ok_or("field `_outcomes` is not a list")?;
        for (k, o) in outcomes.iter().enumerate() {
            let at = |e: String| format!("_outcomes[{k}]: {e}");
            let a = field(o, "_a")
                .map_err(at)?
                .as_array()
                .ok_or_else(|| at("`_a` is not a list".into()))?;
            let p = field(o, "_p")
                .map_err(at)?
                .as_array()
                .ok_or_else(|| at("`_p` is not a list".into()))?;
            let index = a
                .first()
                .and_then(Value::as_u64)
                .ok_or_else(|| at("`_a` has no chosen action".into()))?
                as usize;
            let propensity = p
                .first()
                .and_then(Value::as_f64)
                .ok_or_else(|| at("`_p` has no propensity for the chosen action".into()))?;
            let position = match o.get("_id") {
                Some(Value::String(s)) => s
                    .parse()
                    .map_err(|_| at(format!("slot id `{s}` is not a position")))?,
                _ => k as u32,
            };
            let cost = number(o, "_label_cost").map_err(at)?;
            entries.push((
                action_item(multi, index, catalog, &other).map_err(at)?,
                position,
                propensity,
                cost,
            ));
        }
    } else {
        let index = field(v, "_labelIndex")?
            .as_u64()
            .ok_or("field `_labelIndex` is not a non-negative integer")?
            as usize;
        let propensity = number(v, "_label_probability")?;
        let cost = number(v, "_label_cost")?;
        entries.push((
            action_item(multi, index, catalog, &other)?,
            0,
            propensity,
            cost,
        ));
    }
    if entries.is_empty() {
        return Err("no outcome: the line shows no item".into());
    }
    for (k, &(_, _, p, cost)) in entries.iter().enumerate() {
        if !(p > 0.0 && p <= 1.0) {
            return Err(format!(
                "entry {k}: logging propensity {p} is outside (0, 1]"
            ));
        }
        if !cost.is_finite() {
            return Err(format!("entry {k}: cost {cost} is not finite"));
        }
    }
    let positions: Vec<u32> = entries.iter().map(|e| e.1).collect();
    let natural = positions.iter().enumerate().all(|(k, &p)| p as usize == k);
    let mut decision = Decision {
        event_id,
        slate: Slate::new(entries.iter().map(|e| e.0).collect()).map_err(|e| e.to_string())?,
        propensities: entries.iter().map(|e| e.2).collect(),
        slate_propensity: None,
        positions: (!natural).then_some(positions),
        policy_id: "vw".into(),
        model_version,
    };
    let (context, feedback) = match v.get("_metarec") {
        Some(m) => {
            let mut keyed = field(m, "context")?.clone();
            metarec_data::log::context_keys_to_ids(&mut keyed, catalog).map_err(
                |(path, reason)| format!("`_metarec.context.{path}`: {reason}{}", other()),
            )?;
            let context: Context =
                serde_json::from_value(keyed).map_err(|e| format!("`_metarec.context`: {e}"))?;
            let feedback: Feedback = serde_json::from_value(field(m, "feedback")?.clone())
                .map_err(|e| format!("`_metarec.feedback`: {e}"))?;
            decision.policy_id = m
                .get("policy_id")
                .and_then(Value::as_str)
                .unwrap_or("vw")
                .to_owned();
            decision.slate_propensity = m.get("slate_propensity").and_then(Value::as_f64);
            (context, feedback)
        }
        None => {
            let mut tokens = Vec::new();
            if let Some(Value::Object(user)) = c.get("user") {
                for (name, value) in user {
                    match value {
                        Value::String(s) => tokens.push(format!("{name}={s}")),
                        Value::Bool(true) => tokens.push(name.clone()),
                        other => tokens.push(format!("{name}={other}")),
                    }
                }
            }
            let features = match c.get("x") {
                Some(Value::Array(xs)) => xs
                    .iter()
                    .map(|x| {
                        x.as_f64()
                            .map(|x| x as f32)
                            .ok_or("`c.x` holds a non-number")
                    })
                    .collect::<Result<Vec<f32>, _>>()?,
                _ => Vec::new(),
            };
            let timestamp_ms = match v.get("Timestamp").and_then(Value::as_str) {
                Some(t) => Some(
                    parse_datetime_ms(t)
                        .ok_or_else(|| format!("`Timestamp` `{t}` is not a date-time"))?,
                ),
                None => None,
            };
            let context = Context {
                timestamp_ms,
                features,
                tokens,
                session: SessionState::default(),
                ..Context::default()
            };
            let clicks = entries.iter().map(|e| e.3 < 0.0).collect::<Vec<_>>();
            let n = clicks.len();
            (
                context,
                Feedback {
                    clicks,
                    purchases: vec![false; n],
                    revenue: vec![0.0; n],
                },
            )
        }
    };
    Interaction::new(context, decision, feedback).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metarec_core::{Item, PastEvent, UserKey};

    /// Twenty items keyed `sku0` to `sku19`.
    fn catalog() -> Catalog {
        catalog_of(0..20)
    }

    /// The items `sku{i}` for the given `i`, in order.
    fn catalog_of(numbers: impl Iterator<Item = u32>) -> Catalog {
        let mut c = Catalog::new(Vec::new());
        for i in numbers {
            c.push(Item {
                key: format!("sku{i}"),
                title: None,
                category: None,
                price: None,
                features: Vec::new(),
                embedding: None,
            })
            .unwrap();
        }
        c
    }

    fn sample() -> Vec<Interaction> {
        let context = Context {
            user: UserKey("u1".into()),
            timestamp_ms: Some(1_574_553_634_762),
            features: vec![0.25, -1.5, 3.0e-7],
            tokens: vec!["user_feature_0=81ce".into(), "country=France".into()],
            session: SessionState {
                session: 2,
                step: 1,
                history: vec![PastEvent {
                    item: ItemId(4),
                    click: true,
                    purchase: false,
                }],
                visit_events: Some(1),
            },
            candidates: vec![ItemId(1), ItemId(4), ItemId(7)],
        };
        let slate = Interaction::new(
            context.clone(),
            Decision {
                event_id: EventId("e1".into()),
                slate: Slate::new(vec![ItemId(7), ItemId(1)]).unwrap(),
                propensities: vec![0.5, 0.125],
                slate_propensity: Some(0.0625),
                positions: None,
                policy_id: "lints".into(),
                model_version: "3".into(),
            },
            Feedback {
                clicks: vec![true, false],
                purchases: vec![true, false],
                revenue: vec![12.5, 0.0],
            },
        )
        .unwrap();
        let obd_like = Interaction::new(
            Context::default(),
            Decision {
                event_id: EventId("obd-random-all-0".into()),
                slate: Slate::new(vec![ItemId(14)]).unwrap(),
                propensities: vec![0.0125],
                slate_propensity: None,
                positions: Some(vec![2]),
                policy_id: "obd-random".into(),
                model_version: "obd-small".into(),
            },
            Feedback::none(1),
        )
        .unwrap();
        vec![slate, obd_like]
    }

    #[test]
    fn export_then_import_is_lossless() {
        let log = sample();
        let mut buf = Vec::new();
        for i in &log {
            write_line(&mut buf, i, &RewardFn::default(), &catalog()).unwrap();
        }
        let back = read(buf.as_slice(), "mem", &catalog()).unwrap();
        assert_eq!(back, log);
        // VW's own fields say the same: the cost is minus the reward (1 click + 5 purchase).
        let first: Value =
            serde_json::from_slice(buf.split(|&b| b == b'\n').next().unwrap()).unwrap();
        assert_eq!(first["_outcomes"][0]["_label_cost"], json!(-6.0));
        assert_eq!(first["_outcomes"][1]["_p"], json!([0.125]));
        assert_eq!(first["c"]["_multi"][1]["item"]["id"], json!("sku1"));
        assert_eq!(first["_metarec"]["context"]["candidates"][2], json!("sku7"));
        assert_eq!(
            first["_metarec"]["context"]["session"]["history"][0]["item"],
            json!("sku4")
        );
        assert_eq!(first["_metarec"]["catalog"], json!(catalog().fingerprint()));
        assert_eq!(first["c"]["user"]["country"], json!("France"));
        assert_eq!(first["Timestamp"], json!("2019-11-24T00:00:34.762Z"));
    }

    #[test]
    fn lines_without_metarec_fields_are_read_from_vw_fields() {
        let mut v = to_value(&sample()[0], &RewardFn::default(), &catalog()).unwrap();
        v.as_object_mut().unwrap().remove("_metarec");
        let back = from_value(&v, &catalog()).unwrap();
        let original = &sample()[0];
        assert_eq!(back.decision.slate, original.decision.slate);
        assert_eq!(back.decision.propensities, original.decision.propensities);
        assert_eq!(back.feedback.clicks, vec![true, false]);
        assert_eq!(back.context.timestamp_ms, original.context.timestamp_ms);
        assert_eq!(back.context.features, original.context.features);
        let mut tokens = back.context.tokens.clone();
        tokens.sort();
        assert_eq!(tokens, vec!["country=France", "user_feature_0=81ce"]);
        // VW's single-action contextual-bandit layout.
        let cb = json!({
            "_label_cost": -1.0, "_label_probability": 0.25, "_label_Action": 2, "_labelIndex": 1,
            "a": [2, 1, 3, 4], "p": [0.25, 0.25, 0.25, 0.25], "EventId": "x",
            "c": {"user": {"f": "a"}, "_multi": [{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}]}
        });
        let i = from_value(&cb, &catalog()).unwrap();
        assert_eq!(i.decision.slate.items(), &[ItemId(1)]);
        assert_eq!(i.decision.propensities, vec![0.25]);
        assert_eq!(i.feedback.clicks, vec![true]);
        assert_eq!(i.context.tokens, vec!["f=a"]);
    }

    #[test]
    fn malformed_lines_are_rejected_naming_the_line() {
        let good = serde_json::to_string(
            &to_value(&sample()[1], &RewardFn::default(), &catalog()).unwrap(),
        )
        .unwrap();
        let zero = good.replace("[0.0125]", "[0.0]");
        let cases = [
            ("{", "mem: line 2: not JSON"),
            (
                zero.as_str(),
                "mem: line 2: entry 0: logging propensity 0 is outside (0, 1]",
            ),
            (
                r#"{"c":{"_multi":[]},"_labelIndex":0,"_label_probability":0.5,"_label_cost":0}"#,
                "mem: line 2: action 0 is not in `c._multi` (0 actions)",
            ),
            (
                r#"{"c":{"_multi":[{}]},"_labelIndex":0,"_label_cost":0}"#,
                "mem: line 2: missing field `_label_probability`",
            ),
        ];
        for (bad, expected) in cases {
            let text = format!("{good}\n{bad}\n");
            let err = read(text.as_bytes(), "mem", &catalog())
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn an_unknown_item_key_is_an_error_naming_the_line_and_the_other_catalog() {
        let line = serde_json::to_string(
            &to_value(&sample()[0], &RewardFn::default(), &catalog()).unwrap(),
        )
        .unwrap();
        // Read against a catalog that lacks `sku7`: the slate's first action.
        let smaller = catalog_of((0..20).filter(|&i| i != 7));
        let err = read(format!("\n{line}\n").as_bytes(), "mem", &smaller)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("mem: line 2: _outcomes[0]: action 0: item `sku7` is not in the catalog: the line was written against another catalog"),
            "{err}"
        );
        // Writing an item the catalog lacks names the event.
        let err = to_value(&sample()[0], &RewardFn::default(), &catalog_of(0..5)).unwrap_err();
        assert!(
            err.starts_with("event `e1`: item 7 is not in the catalog"),
            "{err}"
        );
    }
}
