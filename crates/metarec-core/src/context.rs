//! What a policy knows when it is asked for a slate: the [`Context`].
//!
//! A context carries only observable information: the user's key and features, the time, the
//! session so far and the candidate items. Simulators keep their hidden user state elsewhere, so
//! nothing hidden can leak to a policy through this type.

use crate::ids::{ItemId, UserKey};
use serde::{Deserialize, Serialize};

/// One earlier interaction of the user with an item, as a policy may see it.
///
/// It is written as an object (`{"item": 3, "click": true, "purchase": false}`), and read from
/// that or from its [`PastEvent::code`], the one integer a server stores it as
/// ([`packed_history`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PastEvent {
    /// The item shown.
    pub item: ItemId,
    /// Whether the user clicked it.
    pub click: bool,
    /// Whether the user bought it.
    pub purchase: bool,
}

impl PastEvent {
    /// The event as one integer, `4 item + 2 purchase + click`: a history of 100 events
    /// stored this way takes a few hundred bytes of JSON instead of about 4,400.
    pub fn code(&self) -> u64 {
        (u64::from(self.item.0) << 2) | (u64::from(self.purchase) << 1) | u64::from(self.click)
    }

    /// The event of a [`PastEvent::code`], or `None` when the item does not fit an id.
    pub fn from_code(code: u64) -> Option<PastEvent> {
        let item = u32::try_from(code >> 2).ok()?;
        Some(PastEvent {
            item: ItemId(item),
            click: code & 1 == 1,
            purchase: code & 2 == 2,
        })
    }
}

/// The fields of a [`PastEvent`] written out, as the derived form reads them (a map, or a
/// sequence in field order).
#[derive(Deserialize)]
struct PastEventFields {
    item: ItemId,
    click: bool,
    purchase: bool,
}

impl From<PastEventFields> for PastEvent {
    fn from(f: PastEventFields) -> Self {
        PastEvent {
            item: f.item,
            click: f.click,
            purchase: f.purchase,
        }
    }
}

impl<'de> Deserialize<'de> for PastEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = PastEvent;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a history event: {item, click, purchase} or its integer code")
            }

            fn visit_u64<E: serde::de::Error>(self, code: u64) -> Result<PastEvent, E> {
                PastEvent::from_code(code).ok_or_else(|| {
                    E::custom(format!(
                        "history event code {code}: its item {} does not fit a 32-bit id",
                        code >> 2
                    ))
                })
            }

            fn visit_i64<E: serde::de::Error>(self, code: i64) -> Result<PastEvent, E> {
                u64::try_from(code)
                    .map_err(|_| E::custom(format!("history event code {code} is negative")))
                    .and_then(|c| self.visit_u64(c))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<PastEvent, A::Error> {
                PastEventFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(PastEvent::from)
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<PastEvent, A::Error> {
                PastEventFields::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(PastEvent::from)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Writes a history as the [`PastEvent::code`] of each event, for `#[serde(serialize_with)]`:
/// the compact form a server stores with every decision and user state. Any history, packed or
/// not, reads back through [`PastEvent`]'s own deserialisation.
pub mod packed_history {
    use super::PastEvent;
    use serde::ser::SerializeSeq;

    /// Serialises `history` as a sequence of codes.
    pub fn serialize<S: serde::Serializer>(
        history: &[PastEvent],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(history.len()))?;
        for event in history {
            seq.serialize_element(&event.code())?;
        }
        seq.end()
    }
}

/// Where the user stands in their visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// How many earlier sessions (visits) this user has had.
    pub session: u32,
    /// How many slates this session has already shown.
    pub step: u32,
    /// The user's recent interactions, oldest first; producers bound its length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastEvent>,
    /// How many of the history's last events this visit showed, when the producer knows where
    /// the visit began (the simulator and the shop's own sessionised events do). A policy may
    /// then tell what this visit already showed (which a visitor tires of) from what earlier
    /// visits did (which they may want again). `None`, and absent in contexts written before it
    /// existed: unknown, and a policy reads its recent window as the visit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit_events: Option<u32>,
}

impl SessionState {
    /// The events this visit showed: the last [`SessionState::visit_events`] of the history
    /// (all of it when the count exceeds it), or `None` when the producer did not say.
    pub fn visit_history(&self) -> Option<&[PastEvent]> {
        let n = usize::try_from(self.visit_events?).unwrap_or(usize::MAX);
        Some(&self.history[self.history.len().saturating_sub(n)..])
    }
}

/// The observable situation in which a slate is requested.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// Who asks.
    pub user: UserKey,
    /// When, in milliseconds since the Unix epoch (UTC), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    /// Dense numeric user features (for example Open Bandit's user-item affinities).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<f32>,
    /// Categorical user features as `name=value` tokens (for example `country=France`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<String>,
    /// The session so far.
    #[serde(default)]
    pub session: SessionState,
    /// The items the policy may choose from; empty means the whole catalog.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<ItemId>,
}

impl Context {
    /// A context for a user with nothing else known.
    pub fn for_user(user: UserKey) -> Self {
        Context {
            user,
            ..Context::default()
        }
    }

    /// The same user as seen for the first time: who they are, when, and what is known of them
    /// (features and tokens), with no session so far and no candidate list. What a model infers
    /// from this context alone is what it knows of a new user; the ablations that turn a
    /// policy's per-user adaptation off read users through it.
    pub fn as_new_user(&self) -> Context {
        Context {
            user: self.user.clone(),
            timestamp_ms: self.timestamp_ms,
            features: self.features.clone(),
            tokens: self.tokens.clone(),
            ..Context::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_event_reads_from_its_object_its_sequence_or_its_code() {
        for item in [0, 1, 7, u32::MAX] {
            for (click, purchase) in [(false, false), (true, false), (false, true), (true, true)] {
                let e = PastEvent {
                    item: ItemId(item),
                    click,
                    purchase,
                };
                assert_eq!(PastEvent::from_code(e.code()), Some(e));
                let object = serde_json::to_string(&e).unwrap();
                assert!(object.starts_with("{\"item\":"), "{object}");
                for text in [
                    object,
                    format!("[{item},{click},{purchase}]"),
                    e.code().to_string(),
                ] {
                    assert_eq!(
                        serde_json::from_str::<PastEvent>(&text).unwrap(),
                        e,
                        "{text}"
                    );
                }
            }
        }
        assert_eq!(
            PastEvent::from_code(13),
            Some(PastEvent {
                item: ItemId(3),
                click: true,
                purchase: false
            })
        );
        // What is not an event is an error that says why, never a panic.
        let too_big = ((u64::from(u32::MAX) + 1) * 4).to_string();
        let err = serde_json::from_str::<PastEvent>(&too_big).unwrap_err();
        assert!(
            err.to_string().contains("does not fit a 32-bit id"),
            "{err}"
        );
        let err = serde_json::from_str::<PastEvent>("-1").unwrap_err();
        assert!(err.to_string().contains("negative"), "{err}");
        for bad in [r#"{"item":1,"click":true}"#, r#""13""#, "1.5", "[1,true]"] {
            assert!(serde_json::from_str::<PastEvent>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_packed_history_is_the_codes_and_reads_back_as_the_events() {
        #[derive(Serialize)]
        struct Packed<'a> {
            #[serde(serialize_with = "packed_history::serialize")]
            history: &'a [PastEvent],
        }
        let history = vec![
            PastEvent {
                item: ItemId(3),
                click: true,
                purchase: false,
            },
            PastEvent {
                item: ItemId(1),
                click: true,
                purchase: true,
            },
            PastEvent {
                item: ItemId(250),
                click: false,
                purchase: false,
            },
        ];
        let text = serde_json::to_string(&Packed { history: &history }).unwrap();
        assert_eq!(text, r#"{"history":[13,7,1000]}"#);
        let session: SessionState =
            serde_json::from_str(&format!(r#"{{"session":1,"step":2,{}"#, &text[1..])).unwrap();
        assert_eq!(session.history, history);
    }
}
