//! A batch's users split over workers: the network's weights and the collected episodes as
//! exact bytes, so a worker in another process (a Ray actor, from Python) plays part of
//! [`Trainer::batch_users`] with the learner's weights and the learner steps on the parts in
//! order, with the same result as collecting in one process ([`TrainConfig::user_streams`]).
//!
//! [`TrainConfig::user_streams`]: super::TrainConfig::user_streams

use super::{Trainer, Transition};
use crate::error::NeuralError;
use crate::model::{Frozen, sorted_vars};
use candle_core::{DType, Tensor};
use metarec_core::ItemId;

impl Trainer {
    /// The network's weights as little-endian `f32`s, variable after variable in name order.
    pub fn weights_bytes(&self) -> Result<Vec<u8>, NeuralError> {
        let mut out = Vec::new();
        for (_, var) in sorted_vars(&self.varmap) {
            let values = var
                .as_tensor()
                .flatten_all()?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?;
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(out)
    }

    /// Replaces the network's weights with [`Trainer::weights_bytes`] of a network of the same
    /// shape. Nothing changes when the bytes do not fit.
    pub fn set_weights_bytes(&mut self, bytes: &[u8]) -> Result<(), NeuralError> {
        let vars = sorted_vars(&self.varmap);
        let total: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
        if bytes.len() != total * 4 {
            return Err(NeuralError::Config(format!(
                "weights of {} bytes for a network of {total} weights ({} bytes)",
                bytes.len(),
                total * 4
            )));
        }
        // Every tensor is built before any variable is set, so a failure leaves the old ones.
        let mut tensors = Vec::with_capacity(vars.len());
        let mut chunks = bytes.chunks_exact(4);
        for (_, var) in &vars {
            let values: Vec<f32> = chunks
                .by_ref()
                .take(var.elem_count())
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            tensors.push(Tensor::from_vec(values, var.shape(), var.device())?);
        }
        for ((_, var), tensor) in vars.iter().zip(&tensors) {
            var.set(tensor)?;
        }
        self.frozen = Frozen::from_model(&self.model, &self.item_inputs)?;
        Ok(())
    }

    /// Checks that episodes from elsewhere fit this network before any tensor is built from
    /// them: the user tower's input width, items of the catalog, and per-entry feedback as long
    /// as each slate, so a bad or foreign part is an error, never an index out of bounds.
    pub(super) fn check_episodes(&self, episodes: &[Vec<Transition>]) -> Result<(), NeuralError> {
        let (n, width) = (self.features.items(), self.features.user_dim());
        for (e, episode) in episodes.iter().enumerate() {
            for (s, t) in episode.iter().enumerate() {
                let at =
                    |what: String| NeuralError::Config(format!("episode {e}, slate {s}: {what}"));
                if t.input.len() != width {
                    return Err(at(format!(
                        "a user input of {} values for a network that reads {width}",
                        t.input.len()
                    )));
                }
                if t.slate.is_empty()
                    || t.clicks.len() != t.slate.len()
                    || t.purchases.len() != t.slate.len()
                {
                    return Err(at(format!(
                        "{} clicks and {} purchases for a slate of {}",
                        t.clicks.len(),
                        t.purchases.len(),
                        t.slate.len()
                    )));
                }
                let lists = [
                    &t.ignored,
                    &t.clicked,
                    &t.older_ignored,
                    &t.older_clicked,
                    &t.flagged_ignored,
                    &t.flagged_clicked,
                    &t.slate,
                    &t.teacher,
                ];
                if let Some(bad) = lists.iter().flat_map(|l| l.iter()).find(|i| i.index() >= n) {
                    return Err(at(format!("item {} of a catalog of {n}", bad.0)));
                }
                if !(t.reward.is_finite() && t.ret.is_finite()) {
                    return Err(at("a reward that is not a finite number".into()));
                }
                if !(t.values.is_empty() || t.values.len() == n) {
                    return Err(at(format!(
                        "{} item values for a catalog of {n}",
                        t.values.len()
                    )));
                }
                if let Some(v) = t.values.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
                    return Err(at(format!(
                        "an item value of {v}: values are expected rewards, finite and not negative"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The episodes as bytes that [`episodes_from_bytes`] reads back exactly.
pub fn episodes_to_bytes(episodes: &[Vec<Transition>]) -> Vec<u8> {
    let mut out = Vec::new();
    put_len(&mut out, episodes.len());
    for episode in episodes {
        put_len(&mut out, episode.len());
        for t in episode {
            put_len(&mut out, t.input.len());
            for v in &t.input {
                out.extend_from_slice(&v.to_le_bytes());
            }
            for items in [
                &t.ignored,
                &t.clicked,
                &t.slate,
                &t.teacher,
                &t.older_ignored,
                &t.older_clicked,
                &t.flagged_ignored,
                &t.flagged_clicked,
            ] {
                put_len(&mut out, items.len());
                for i in items.iter() {
                    out.extend_from_slice(&i.0.to_le_bytes());
                }
            }
            for flags in [&t.clicks, &t.purchases] {
                put_len(&mut out, flags.len());
                out.extend(flags.iter().map(|&f| u8::from(f)));
            }
            out.extend_from_slice(&t.reward.to_le_bytes());
            out.extend_from_slice(&t.ret.to_le_bytes());
            out.push(u8::from(t.last));
            put_len(&mut out, t.values.len());
            for v in &t.values {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out
}

/// Reads [`episodes_to_bytes`]' output; anything else is a [`NeuralError::Config`] naming the
/// offset where it went wrong.
pub fn episodes_from_bytes(bytes: &[u8]) -> Result<Vec<Vec<Transition>>, NeuralError> {
    let mut r = Reader { bytes, at: 0 };
    let n = r.len()?;
    let mut episodes = Vec::with_capacity(n.min(bytes.len()));
    for _ in 0..n {
        let steps = r.len()?;
        let mut episode = Vec::with_capacity(steps.min(bytes.len()));
        for _ in 0..steps {
            let inputs = r.len()?;
            let input = (0..inputs)
                .map(|_| r.take::<4>().map(f32::from_le_bytes))
                .collect::<Result<Vec<f32>, _>>()?;
            let mut lists: [Vec<ItemId>; 8] = Default::default();
            for list in &mut lists {
                let len = r.len()?;
                *list = (0..len)
                    .map(|_| r.take::<4>().map(|b| ItemId(u32::from_le_bytes(b))))
                    .collect::<Result<_, _>>()?;
            }
            let [
                ignored,
                clicked,
                slate,
                teacher,
                older_ignored,
                older_clicked,
                flagged_ignored,
                flagged_clicked,
            ] = lists;
            let mut flags = [Vec::new(), Vec::new()];
            for list in &mut flags {
                let len = r.len()?;
                *list = (0..len).map(|_| r.flag()).collect::<Result<_, _>>()?;
            }
            let [clicks, purchases] = flags;
            let reward = f64::from_le_bytes(r.take::<8>()?);
            let ret = f64::from_le_bytes(r.take::<8>()?);
            let last = r.flag()?;
            let count = r.len()?;
            let values = (0..count)
                .map(|_| r.take::<4>().map(f32::from_le_bytes))
                .collect::<Result<Vec<f32>, _>>()?;
            episode.push(Transition {
                input,
                ignored,
                clicked,
                older_ignored,
                older_clicked,
                flagged_ignored,
                flagged_clicked,
                slate,
                clicks,
                purchases,
                reward,
                ret,
                last,
                teacher,
                values,
            });
        }
        episodes.push(episode);
    }
    if r.at != bytes.len() {
        return Err(r.error("bytes after the last episode"));
    }
    Ok(episodes)
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(&(len as u64).to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn error(&self, what: &str) -> NeuralError {
        NeuralError::Config(format!("episode bytes, offset {}: {what}", self.at))
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], NeuralError> {
        let end = self.at.checked_add(N).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.error("cut short"));
        };
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..end]);
        self.at = end;
        Ok(out)
    }

    fn len(&mut self) -> Result<usize, NeuralError> {
        let n = u64::from_le_bytes(self.take::<8>()?);
        // No length can exceed the bytes left, which also bounds what a hostile length allocates.
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len() - self.at)
            .ok_or_else(|| self.error(&format!("length {n} is longer than the bytes left")))
    }

    fn flag(&mut self) -> Result<bool, NeuralError> {
        match self.take::<1>()?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.error(&format!("flag byte {b}, expected 0 or 1"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::tests::catalog;
    use crate::train::{Algo, TrainConfig};
    use metarec_core::RewardFn;

    fn trainer(seed: u64) -> Trainer {
        let config = TrainConfig {
            algo: Algo::Reinforce,
            batch: 4,
            seed,
            user_streams: true,
            ..TrainConfig::default()
        };
        Trainer::new(&catalog(12), RewardFn::default(), config).unwrap()
    }

    #[test]
    fn foreign_episodes_are_errors_before_any_tensor() {
        let mut t = trainer(1);
        let good = Transition {
            input: vec![0.0; t.features.user_dim()],
            ignored: vec![],
            clicked: vec![ItemId(1)],
            older_ignored: vec![],
            older_clicked: vec![],
            flagged_ignored: vec![],
            flagged_clicked: vec![ItemId(1)],
            slate: vec![ItemId(2), ItemId(3)],
            clicks: vec![true, false],
            purchases: vec![false, false],
            reward: 1.0,
            ret: 1.0,
            last: true,
            teacher: vec![],
            values: vec![],
        };
        let weights = t.weights_bytes().unwrap();
        let bad: [fn(&mut Transition); 7] = [
            |t| t.input.push(0.0),
            |t| t.clicked.push(ItemId(12)),
            |t| t.older_ignored.push(ItemId(12)),
            |t| t.flagged_clicked.push(ItemId(40)),
            |t| t.slate.push(ItemId(u32::MAX)),
            |t| {
                t.purchases.pop();
            },
            |t| t.reward = f64::NAN,
        ];
        for spoil in bad {
            let mut b = good.clone();
            spoil(&mut b);
            assert!(t.learn_from(&[vec![good.clone()], vec![b]]).is_err());
        }
        assert_eq!(
            t.weights_bytes().unwrap(),
            weights,
            "a refused batch changes nothing"
        );
        assert_eq!(t.iterations_done, 0);
        t.learn_from(&[vec![good]]).unwrap();
        assert_eq!(t.iterations_done, 1);
    }

    #[test]
    fn weights_travel_exactly_and_bad_bytes_change_nothing() {
        let a = trainer(1);
        let mut b = trainer(2);
        let wa = a.weights_bytes().unwrap();
        assert_ne!(wa, b.weights_bytes().unwrap(), "the seeds must differ");
        let before = b.weights_bytes().unwrap();
        assert!(b.set_weights_bytes(&wa[1..]).is_err());
        assert_eq!(b.weights_bytes().unwrap(), before);
        b.set_weights_bytes(&wa).unwrap();
        assert_eq!(b.weights_bytes().unwrap(), wa);
    }

    #[test]
    fn episodes_round_trip_and_hostile_bytes_are_errors() {
        let t = Transition {
            input: vec![0.5, -1.25, f32::MIN_POSITIVE],
            ignored: vec![ItemId(3)],
            clicked: vec![],
            older_ignored: vec![ItemId(5)],
            older_clicked: vec![ItemId(2), ItemId(4)],
            flagged_ignored: vec![ItemId(3), ItemId(5)],
            flagged_clicked: vec![ItemId(4)],
            slate: vec![ItemId(1), ItemId(7)],
            clicks: vec![true, false],
            purchases: vec![false, false],
            reward: 0.1 + 0.2,
            ret: 1.0 / 3.0,
            last: true,
            teacher: vec![ItemId(2), ItemId(9)],
            values: vec![0.25, 0.0, 1.5],
        };
        let episodes = vec![vec![t.clone(), t], vec![]];
        let bytes = episodes_to_bytes(&episodes);
        let back = episodes_from_bytes(&bytes).unwrap();
        assert_eq!(episodes_to_bytes(&back), bytes);
        assert_eq!(back[0][0].reward.to_bits(), (0.1f64 + 0.2).to_bits());
        for cut in [0, 7, 8, bytes.len() / 2, bytes.len() - 1] {
            assert!(episodes_from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(episodes_from_bytes(&longer).is_err());
        // A length field claiming far more than there is must not allocate it.
        let mut huge = bytes;
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(episodes_from_bytes(&huge).is_err());
    }
}
