//! `served:DIR` in the arena: the model as `metarec serve` serves it, played over the HTTP API.
//!
//! The in-process contestants (`adjusted:DIR`) read each simulated user's context as the
//! simulator writes it. A shop's users get what the server makes of its requests instead: the
//! history it keeps, the visits it tells apart, the moment feedback reaches the adjuster. This
//! contestant measures that: the arena starts a `metarec serve` child per model, and
//! [`ServedPolicy`] ranks each slate with `POST /v1/rank` and sends the user's clicks and
//! purchases with `POST /v1/feedback`, as a shop's front end would. It sends the simulator's
//! visit as the request's `session_id`, so the server's visits are the simulator's without any
//! wall clock, and it keeps the server's defaults for everything else (a 10-minute reward
//! window, which no run of the arena reaches: the adjuster folds in passed-over items when the
//! window closes, so here it adapts from clicks alone, as a shop's server does within a visit).

use crate::Global;
use crate::bench::server_child::{BENCH_TOKEN, ServerChild};
use anyhow::{Context as _, Result};
use metarec_core::{Catalog, Context, Interaction, ItemId, Policy, Rng, SlateChoice};
use metarec_eval::policies::{PolicySpec, ServedLink};
use metarec_serve::client::Client;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The first failure of any served agent of a run: the arena sees only an empty slate (an
/// invalid decision), so the command reports this instead.
pub type Failure = Arc<Mutex<Option<String>>>;

/// Starts a server for every `served:DIR` spec (one per model directory) and links each spec
/// to its server. The children live as long as the returned handles.
pub fn link_servers(
    contestants: &mut [PolicySpec],
    global: &Global,
) -> Result<(Vec<ServerChild>, Failure)> {
    let failure: Failure = Arc::new(Mutex::new(None));
    let mut children: Vec<(std::path::PathBuf, ServerChild)> = Vec::new();
    for spec in contestants.iter_mut() {
        let PolicySpec::Served { name, model, link } = spec else {
            continue;
        };
        let Some(bundle) = model.bundle().cloned() else {
            anyhow::bail!("policy `{name}`: its model was not loaded");
        };
        let dir = model.dir().to_path_buf();
        let addr = match children.iter().find(|(d, _)| *d == dir) {
            Some((_, child)) => child.addr,
            None => {
                global.progress(format!("starting `metarec serve` for {name} ..."));
                let child = ServerChild::spawn(
                    global,
                    &dir,
                    2,
                    crate::serve::DurabilityArg::Process,
                    None,
                    &[],
                )
                .with_context(|| format!("policy `{name}`: cannot start its server"))?;
                let addr = child.addr;
                children.push((dir, child));
                addr
            }
        };
        let catalog = bundle.catalog.clone();
        let failure = failure.clone();
        let run = name.clone();
        *link = Some(ServedLink(Arc::new(move |seed| {
            Ok(Box::new(ServedPolicy::new(
                &run,
                addr,
                catalog.clone(),
                seed,
                failure.clone(),
            )) as Box<dyn Policy>)
        })));
    }
    Ok((children.into_iter().map(|(_, c)| c).collect(), failure))
}

/// The failure recorded by a served agent, if any.
pub fn failure(failure: &Failure) -> Option<String> {
    failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// One arena job's agent: ranks and sends feedback over a server's HTTP API.
pub struct ServedPolicy {
    name: String,
    client: Client,
    catalog: Arc<Catalog>,
    /// Prefixes user keys and session ids, so the job's users are the server's new users: the
    /// simulator's user 5 of seed 0 and of seed 1 are two people.
    prefix: String,
    /// The event of the last slate, which the next feedback answers.
    event: Option<String>,
    failure: Failure,
}

impl ServedPolicy {
    fn new(
        name: &str,
        addr: SocketAddr,
        catalog: Arc<Catalog>,
        seed: u64,
        failure: Failure,
    ) -> Self {
        ServedPolicy {
            name: name.to_owned(),
            client: Client::new(addr, Some(BENCH_TOKEN)),
            catalog,
            prefix: format!("arena-s{seed}-"),
            event: None,
            failure,
        }
    }

    /// Records the first failure; the decision that follows is empty, which stops the arena.
    fn fail(&self, message: String) {
        let mut slot = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(message);
    }

    fn post(&mut self, path: &str, body: &Value) -> Result<Value, String> {
        let bytes = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let r = self
            .client
            .request("POST", path, Some(&bytes))
            .map_err(|e| format!("{path}: {e}"))?;
        if r.status != 200 {
            return Err(format!("{path} answered {}: {}", r.status, r.text()));
        }
        Ok(r.json())
    }

    /// The rank request for a simulated user's context.
    fn rank_body(&self, context: &Context, k: usize) -> Result<Value, String> {
        // The simulator's tokens are `name=value`, which is how the server flattens a context
        // object's string fields, so the network reads the same tokens.
        let mut fields = serde_json::Map::new();
        for token in &context.tokens {
            let (name, value) = token
                .split_once('=')
                .ok_or_else(|| format!("context token `{token}` is not name=value"))?;
            fields.insert(name.to_owned(), Value::String(value.to_owned()));
        }
        let mut body = json!({
            "user": format!("{}{}", self.prefix, context.user.0),
            "session_id": format!("{}{}/{}", self.prefix, context.user.0, context.session.session),
            "context": fields,
            "slate_size": k,
            "explain": false,
        });
        if !context.candidates.is_empty() {
            let keys = context
                .candidates
                .iter()
                .map(|&id| {
                    self.catalog
                        .key(id)
                        .map(str::to_owned)
                        .ok_or_else(|| format!("candidate {} is not in the catalog", id.0))
                })
                .collect::<Result<Vec<_>, _>>()?;
            body["candidates"] = json!(keys);
        }
        Ok(body)
    }

    fn try_decide(&mut self, context: &Context, k: usize) -> Result<SlateChoice, String> {
        let body = self.rank_body(context, k)?;
        let answer = self.post("/v1/rank", &body)?;
        self.event = Some(
            answer["event_id"]
                .as_str()
                .ok_or("the rank answer has no event_id")?
                .to_owned(),
        );
        let slate = answer["slate"]
            .as_array()
            .ok_or("the rank answer has no slate")?;
        let mut choice = SlateChoice {
            items: Vec::with_capacity(slate.len()),
            propensities: Vec::with_capacity(slate.len()),
            slate_propensity: answer["slate_propensity"].as_f64(),
        };
        for entry in slate {
            let key = entry["item"].as_str().ok_or("a slate entry has no item")?;
            let id: ItemId = self.catalog.id_of(key).ok_or_else(|| {
                format!("the server ranked `{key}`, which the model's catalog lacks")
            })?;
            choice.items.push(id);
            choice.propensities.push(
                entry["propensity"]
                    .as_f64()
                    .ok_or("a slate entry has no propensity")?,
            );
        }
        Ok(choice)
    }

    fn try_observe(&mut self, interaction: &Interaction) -> Result<(), String> {
        let event = self
            .event
            .take()
            .ok_or("feedback for a slate the server did not rank")?;
        let fb = &interaction.feedback;
        for p in 0..fb.len() {
            // A purchase implies its click, so it is the one message for its position.
            let body = if fb.purchases[p] {
                json!({"event_id": event, "position": p, "kind": "purchase", "revenue": fb.revenue[p]})
            } else if fb.clicks[p] {
                json!({"event_id": event, "position": p, "kind": "click"})
            } else {
                continue;
            };
            self.post("/v1/feedback", &body)?;
        }
        Ok(())
    }
}

impl Policy for ServedPolicy {
    fn name(&self) -> &str {
        &self.name
    }

    fn decide(&mut self, context: &Context, k: usize, _rng: &mut Rng) -> SlateChoice {
        match self.try_decide(context, k) {
            Ok(choice) => choice,
            Err(message) => {
                self.fail(message);
                SlateChoice {
                    items: Vec::new(),
                    propensities: Vec::new(),
                    slate_propensity: None,
                }
            }
        }
    }

    fn observe(&mut self, interaction: &Interaction) {
        if let Err(message) = self.try_observe(interaction) {
            self.fail(message);
        }
    }
}
