//! [`rollout()`]: the one loop that plays simulated users, used by every place that does (the
//! arena, training, distillation, meta-training, calibration and the benchmarks).
//!
//! A user is reset, then shown slates until they leave: the [`Agent`] decides, the decision is
//! checked ([`decision_from_choice`]), the environment steps, and the agent observes the
//! interaction. An [`Observer`] watches without deciding: it is told when a user starts, sees
//! each decision before the environment steps (while the environment is still in the state the
//! decision was made in, so an oracle can price it), and each interaction after. The loop draws
//! no randomness of its own: the agent draws from the generator passed in, in the order it
//! decides, so a runner that moves onto this loop keeps its numbers.

use crate::context::Context;
use crate::decision::{Decision, Interaction};
use crate::error::VocabError;
use crate::explore::{Rng, SlateChoice};
use crate::ids::EventId;
use crate::policy::{Environment, Policy, decision_from_choice};

/// Whatever chooses slates in a rollout: any [`Policy`] (through the blanket implementation,
/// which ignores the environment), or a yardstick that reads the environment's hidden state,
/// such as the oracle, which needs `E:` [`crate::Oracle`].
pub trait Agent<E: ?Sized> {
    /// The name logged as each decision's `policy_id`.
    fn name(&self) -> &str;

    /// The version logged as each decision's `model_version`.
    fn model_version(&self) -> String {
        "0".into()
    }

    /// A new user starts with this context.
    fn start_user(&mut self, env: &E, context: &Context);

    /// Chooses a slate of at most `k` items.
    fn decide(&mut self, env: &E, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice;

    /// Learns from what the user did with the agent's slate.
    fn observe(&mut self, interaction: &Interaction);
}

impl<E: ?Sized, P: Policy + ?Sized> Agent<E> for P {
    fn name(&self) -> &str {
        Policy::name(self)
    }

    fn model_version(&self) -> String {
        Policy::model_version(self)
    }

    fn start_user(&mut self, _env: &E, context: &Context) {
        Policy::start_user(self, context);
    }

    fn decide(&mut self, _env: &E, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        Policy::decide(self, context, k, rng)
    }

    fn observe(&mut self, interaction: &Interaction) {
        Policy::observe(self, interaction);
    }
}

/// Watches a rollout: every hook has an empty default, so an observer implements what it needs.
pub trait Observer<E: ?Sized> {
    /// User `user` starts with this context.
    fn start_user(&mut self, user: u64, context: &Context) {
        let _ = (user, context);
    }

    /// The agent decided `decision`, the user's `t`-th slate (0-based), in `context`; the
    /// environment has not stepped yet.
    fn decided(&mut self, env: &E, t: usize, context: &Context, decision: &Decision) {
        let _ = (env, t, context, decision);
    }

    /// The user reacted; `last` is true when they have left for good.
    fn stepped(&mut self, t: usize, interaction: &Interaction, last: bool) {
        let _ = (t, interaction, last);
    }

    /// User `user` has left after `slates` slates.
    fn end_user(&mut self, user: u64, slates: usize) {
        let _ = (user, slates);
    }
}

/// The observer that watches nothing.
impl<E: ?Sized> Observer<E> for () {}

/// How decisions of a rollout are labelled in logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EventIds<'a> {
    /// Empty event ids (training and benchmarks, where nothing is logged).
    #[default]
    None,
    /// `{prefix}-u{user}-t{t}`: unique within a run when each prefix is.
    Prefixed(&'a str),
}

impl EventIds<'_> {
    fn id(&self, user: u64, t: usize) -> EventId {
        match self {
            EventIds::None => EventId(String::new()),
            EventIds::Prefixed(prefix) => EventId(format!("{prefix}-u{user}-t{t}")),
        }
    }
}

/// Plays the users `users` one after the other, each from arrival to departure, with the same
/// agent (which keeps what it learned from earlier users), and returns the slates shown in all.
///
/// Fails only when the agent's choice breaks a decision's invariants (a bug in the agent).
pub fn rollout<E, A, O>(
    env: &mut E,
    agent: &mut A,
    users: std::ops::Range<u64>,
    rng: &mut Rng,
    observer: &mut O,
    ids: EventIds<'_>,
) -> Result<usize, VocabError>
where
    E: Environment + ?Sized,
    A: Agent<E> + ?Sized,
    O: Observer<E> + ?Sized,
{
    let k = env.slate_size();
    let mut slates = 0;
    for user in users {
        let mut context = Some(env.reset(user));
        if let Some(ctx) = &context {
            agent.start_user(env, ctx);
            observer.start_user(user, ctx);
        }
        let mut t = 0usize;
        while let Some(ctx) = context {
            let choice = agent.decide(env, &ctx, k, rng);
            let decision =
                decision_from_choice(choice, ids.id(user, t), agent.name(), agent.model_version())?;
            observer.decided(env, t, &ctx, &decision);
            let step = env.step(&decision);
            let next = step.next;
            let interaction = Interaction {
                context: ctx,
                decision,
                feedback: step.feedback,
            };
            observer.stepped(t, &interaction, next.is_none());
            agent.observe(&interaction);
            context = next;
            t += 1;
        }
        observer.end_user(user, t);
        slates += t;
    }
    Ok(slates)
}

/// An observer that keeps every interaction (to write a log or to train on it).
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    /// The interactions, in the order they happened.
    pub log: Vec<Interaction>,
}

impl<E: ?Sized> Observer<E> for Recorder {
    fn stepped(&mut self, _t: usize, interaction: &Interaction, _last: bool) {
        self.log.push(interaction.clone());
    }
}
