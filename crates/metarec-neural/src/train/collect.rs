//! The network as the agent of a rollout during training: it samples each slate by
//! Plackett-Luce over its scores and keeps every step as a [`Transition`]; in distillation it
//! first asks the teacher what it would have shown in the same state.

use super::Transition;
use crate::features::{Features, UserView};
use crate::model::Frozen;
use metarec_core::explore::{SlateChoice, plackett_luce};
use metarec_core::{Agent, Context, Interaction, ItemId, Policy, RewardFn, Rng};

use super::Reveal;

/// The network sampling slates in a rollout, keeping each step as a [`Transition`] (and, in
/// distillation, asking the teacher what it would have shown in the same state first; in
/// posterior distillation, asking the simulator every item's value for the hidden user).
pub(super) struct Collector<'a, 't, E: ?Sized> {
    pub(super) frozen: &'a Frozen,
    pub(super) features: &'a Features,
    pub(super) reward: &'a RewardFn,
    pub(super) teacher: Option<&'t mut dyn Policy>,
    /// How to read every item's value in the current state (posterior distillation only).
    pub(super) reveal: Option<Reveal<E>>,
    pub(super) candidates: Vec<ItemId>,
    /// The temperature slates are sampled at ([`super::TrainConfig::rollout_temperature`]).
    pub(super) temperature: f64,
    /// How many of the teacher's best items to keep ([`super::TrainConfig::imitate_depth`]).
    pub(super) depth: usize,
    pub(super) view: UserView,
    pub(super) hidden: Vec<f32>,
    pub(super) g: Vec<f32>,
    pub(super) scores: Vec<f64>,
    /// The user side, the teacher's slate and the revealed values of the decision awaiting
    /// its feedback.
    pub(super) pending: Option<(UserView, Vec<ItemId>, Vec<f32>)>,
    pub(super) episode: Vec<Transition>,
}

impl<E: ?Sized> Agent<E> for Collector<'_, '_, E> {
    fn name(&self) -> &str {
        ""
    }

    fn model_version(&self) -> String {
        String::new()
    }

    fn start_user(&mut self, _env: &E, context: &Context) {
        if let Some(t) = self.teacher.as_mut() {
            t.start_user(context);
        }
    }

    fn decide(&mut self, env: &E, context: &Context, k: usize, rng: &mut Rng) -> SlateChoice {
        let taught = self
            .teacher
            .as_mut()
            .map(|t| t.decide(context, k.max(self.depth), rng).items)
            .unwrap_or_default();
        self.features.user_view(context, &mut self.view);
        let view = &self.view;
        self.frozen.user_of(view, &mut self.hidden, &mut self.g);
        for (i, s) in self.scores.iter_mut().enumerate() {
            let (ignored, clicked) = view.flags(ItemId(i as u32));
            *s = f64::from(self.frozen.score(&self.g, i, ignored, clicked));
        }
        let values = self
            .reveal
            .map(|reveal| {
                reveal(env, self.reward)
                    .into_iter()
                    .map(|v| v as f32)
                    .collect()
            })
            .unwrap_or_default();
        self.pending = Some((view.clone(), taught, values));
        plackett_luce(&self.candidates, &self.scores, k, self.temperature, 0, rng)
    }

    fn observe(&mut self, interaction: &Interaction) {
        let (view, taught, values) = self.pending.take().unwrap_or_default();
        let feedback = &interaction.feedback;
        self.episode.push(Transition {
            input: view.input,
            ignored: view.ignored,
            clicked: view.clicked,
            older_ignored: view.older_ignored,
            older_clicked: view.older_clicked,
            flagged_ignored: view.flagged_ignored,
            flagged_clicked: view.flagged_clicked,
            slate: interaction.decision.slate.items().to_vec(),
            clicks: feedback.clicks.clone(),
            purchases: feedback.purchases.clone(),
            reward: self.reward.reward(feedback),
            ret: 0.0,
            last: false,
            teacher: taught,
            values,
        });
        if let Some(t) = self.teacher.as_mut() {
            t.observe(interaction);
        }
    }
}
