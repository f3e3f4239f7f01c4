//! The candidates' item vectors laid out by dimension for [`super::decide::decide_with`]: the
//! layout itself ([`spread_columns`], which also gives the network's scores) and the score
//! pass over it ([`corrected_scores`]). Both vectorise over candidates while summing every
//! score in the same order as one candidate at a time, so they give the same bits.

use metarec_core::ItemId;

/// Corrected scores of the candidates: the calibrated network score (`base`) plus `<h_i, delta>`,
/// with the candidates' vectors in `columns` by dimension (`columns[k * n + j]` is coordinate `k`
/// of candidate `j`).
///
/// Each score's dot product is summed over the coordinates in order from -0.0, exactly as
/// `Iterator::sum` does one candidate at a time, so the scores are bit-identical to that; laid
/// out by dimension, though, the candidates are independent lanes that the compiler vectorises,
/// rather than one serial chain of additions per candidate.
///
/// On x86-64 processors with AVX2 the same loop runs compiled for it (four lanes per vector
/// instead of SSE2's two; multiplications and additions stay separate, never fused, so the
/// scores are the same bits).
pub(super) fn corrected_scores(columns: &[f64], base: &[f64], delta: &[f64], out: &mut Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, as just checked.
        unsafe { corrected_scores_avx2(columns, base, delta, out) };
        return;
    }
    corrected_scores_portable(columns, base, delta, out);
}

/// [`corrected_scores`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn corrected_scores_avx2(columns: &[f64], base: &[f64], delta: &[f64], out: &mut Vec<f64>) {
    corrected_scores_portable(columns, base, delta, out);
}

/// [`corrected_scores`] under each of several corrections at once: correction `r` is
/// `deltas[r * d..(r + 1) * d]` and its scores are written to `out[r * n..(r + 1) * n]` (`n`
/// candidates), each bit for bit what [`corrected_scores`] gives for it.
///
/// The Monte Carlo draws of a Thompson-sampling decision score the same candidates under
/// sixteen corrections; two at a time, each coordinate's column is read once for both, and
/// the processor has twice the independent sums to overlap.
pub(super) fn corrected_scores_many(
    columns: &[f64],
    base: &[f64],
    deltas: &[f64],
    d: usize,
    out: &mut Vec<f64>,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, as just checked.
        unsafe { corrected_scores_many_avx2(columns, base, deltas, d, out) };
        return;
    }
    corrected_scores_many_portable(columns, base, deltas, d, out);
}

/// [`corrected_scores_many`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn corrected_scores_many_avx2(
    columns: &[f64],
    base: &[f64],
    deltas: &[f64],
    d: usize,
    out: &mut Vec<f64>,
) {
    corrected_scores_many_portable(columns, base, deltas, d, out);
}

/// [`corrected_scores_many`] for any processor; inlined into each compiled variant.
#[inline(always)]
fn corrected_scores_many_portable(
    columns: &[f64],
    base: &[f64],
    deltas: &[f64],
    d: usize,
    out: &mut Vec<f64>,
) {
    let n = base.len();
    let count = deltas.len().checked_div(d).unwrap_or(0);
    out.clear();
    out.resize(count * n, -0.0);
    if n == 0 {
        return;
    }
    let mut pairs = out.chunks_exact_mut(2 * n);
    for (r, pair) in pairs.by_ref().enumerate() {
        let (first, second) = pair.split_at_mut(n);
        let at = 2 * r * d;
        score_block(
            columns,
            base,
            [&deltas[at..at + d], &deltas[at + d..at + 2 * d]],
            [first, second],
        );
    }
    let last = pairs.into_remainder();
    if !last.is_empty() {
        score_block(columns, base, [&deltas[(count - 1) * d..count * d]], [last]);
    }
}

/// [`corrected_scores`] for any processor; inlined into each compiled variant.
#[inline(always)]
fn corrected_scores_portable(columns: &[f64], base: &[f64], delta: &[f64], out: &mut Vec<f64>) {
    out.clear();
    out.resize(base.len(), -0.0);
    score_block(columns, base, [delta], [&mut out[..]]);
}

/// The candidates' corrected scores under `R` corrections, into `R` outputs of the candidates'
/// length: each score's dot product summed over the coordinates in order from -0.0, then the
/// base added.
#[inline(always)]
fn score_block<const R: usize>(
    columns: &[f64],
    base: &[f64],
    deltas: [&[f64]; R],
    mut outs: [&mut [f64]; R],
) {
    /// Candidates scored together: their running sums stay in registers across the dimensions.
    const BLOCK: usize = 16;
    let n = base.len();
    if n == 0 {
        return;
    }
    let dims = deltas
        .iter()
        .fold(columns.len() / n, |dims, delta| dims.min(delta.len()));
    let full = n / BLOCK * BLOCK;
    for j in (0..full).step_by(BLOCK) {
        let mut acc = [[-0.0f64; BLOCK]; R];
        for k in 0..dims {
            let column = &columns[k * n + j..k * n + j + BLOCK];
            for (sums, delta) in acc.iter_mut().zip(&deltas) {
                let d = delta[k];
                for (a, v) in sums.iter_mut().zip(column) {
                    *a += v * d;
                }
            }
        }
        for (out, sums) in outs.iter_mut().zip(&acc) {
            out[j..j + BLOCK].copy_from_slice(sums);
        }
    }
    for (out, delta) in outs.iter_mut().zip(&deltas) {
        let tail = &mut out[full..n];
        tail.fill(-0.0);
        for (k, d) in delta[..dims].iter().enumerate() {
            let column = &columns[k * n + full..(k + 1) * n];
            for (o, v) in tail.iter_mut().zip(column) {
                *o += v * d;
            }
        }
        for (o, b) in out[..n].iter_mut().zip(base) {
            *o += b;
        }
    }
}

/// Spreads the candidates' rows of `vectors` (`e` wide) over `columns` by dimension, widened
/// to f64 (`columns[k * m + j]` is coordinate `k` of candidate `j`, of `m`), and writes each
/// candidate's `<head, h_j>` into `dots` as `Frozen::score` sums it: in f32, over the
/// coordinates in order from -0.0, each product rounded before it is added. `head` has at
/// least `e` values; `columns` holds `e * m`, `dots` `m`.
///
/// A row spread one value at a time is a scattered store per value, and this copy was the
/// largest part of a decision after the scoring itself. On x86-64 four candidates' rows are
/// read four coordinates at a time and transposed in SSE registers (part of every x86-64
/// processor), so each store writes values of one column, and the four transposed columns
/// are the next four terms of the four candidates' dot products, added in the same order.
/// What is left over (a last few candidates, a width not a multiple of four) is done one
/// value at a time.
pub(super) fn spread_columns(
    vectors: &[f32],
    e: usize,
    candidates: &[ItemId],
    head: &[f32],
    columns: &mut [f64],
    dots: &mut [f32],
) {
    let m = candidates.len();
    let head = &head[..e];
    let row = |c: &ItemId| &vectors[c.index() * e..(c.index() + 1) * e];
    #[cfg(target_arch = "x86_64")]
    let done = {
        use std::arch::x86_64::{
            _mm_add_ps, _mm_cvtps_pd, _mm_movehl_ps, _mm_mul_ps, _mm_set1_ps, _mm_storeu_pd,
            _mm_storeu_ps,
        };
        let wide = e / 4 * 4;
        for (block, four) in candidates.chunks_exact(4).enumerate() {
            let j = block * 4;
            let rows = [row(&four[0]), row(&four[1]), row(&four[2]), row(&four[3])];
            let out = &mut dots[j..j + 4];
            // SAFETY: SSE and SSE2 are enabled on every x86-64 target; each store writes the
            // four (or two) values of a slice of that length, bounds-checked where it is taken.
            unsafe {
                let mut acc = _mm_set1_ps(-0.0);
                for k in (0..wide).step_by(4) {
                    let transposed = crate::model::columns_of_four(rows, k);
                    for (i, v) in transposed.into_iter().enumerate() {
                        acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(head[k + i]), v));
                        let at = (k + i) * m + j;
                        let column = &mut columns[at..at + 4];
                        _mm_storeu_pd(column[..2].as_mut_ptr(), _mm_cvtps_pd(v));
                        let high = _mm_cvtps_pd(_mm_movehl_ps(v, v));
                        _mm_storeu_pd(column[2..].as_mut_ptr(), high);
                    }
                }
                _mm_storeu_ps(out.as_mut_ptr(), acc);
            }
            for (l, r) in rows.iter().enumerate() {
                for (k, &x) in r.iter().enumerate().skip(wide) {
                    columns[k * m + j + l] = f64::from(x);
                    out[l] += head[k] * x;
                }
            }
        }
        m / 4 * 4
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (j, c) in candidates.iter().enumerate().skip(done) {
        let mut dot = -0.0f32;
        for (k, (&x, g)) in row(c).iter().zip(head).enumerate() {
            columns[k * m + j] = f64::from(x);
            dot += g * x;
        }
        dots[j] = dot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_under_many_corrections_are_each_corrections_own_bits() {
        let d = 7;
        for n in [1, 3, 16, 17, 40] {
            let columns: Vec<f64> = (0..d * n).map(|x| (x as f64 * 0.37).sin()).collect();
            let base: Vec<f64> = (0..n).map(|x| (x as f64 * 0.11).cos()).collect();
            for count in [0, 1, 2, 5, 16] {
                let deltas: Vec<f64> = (0..count * d)
                    .map(|x| (x as f64 * 1.3).cos() * 3.0)
                    .collect();
                let mut many = vec![f64::NAN; 3];
                corrected_scores_many(&columns, &base, &deltas, d, &mut many);
                assert_eq!(many.len(), count * n);
                let mut portable = Vec::new();
                corrected_scores_many_portable(&columns, &base, &deltas, d, &mut portable);
                for r in 0..count {
                    let mut one = Vec::new();
                    corrected_scores(&columns, &base, &deltas[r * d..(r + 1) * d], &mut one);
                    // And as one candidate at a time: an iterator's sum from -0.0, in order.
                    for (j, o) in one.iter().enumerate() {
                        let dot: f64 = (0..d).map(|k| columns[k * n + j] * deltas[r * d + k]).sum();
                        assert_eq!(o.to_bits(), (dot + base[j]).to_bits(), "n {n}, draw {r}");
                    }
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    let range = r * n..(r + 1) * n;
                    assert_eq!(bits(&many[range.clone()]), bits(&one), "n {n}, draw {r}");
                    assert_eq!(bits(&portable[range]), bits(&one), "n {n}, draw {r}");
                }
            }
        }
    }

    #[test]
    fn columns_and_dots_are_the_candidates_rows_at_every_shape() {
        let vectors: Vec<f32> = (0..30 * 9).map(|x| (x as f32 * 0.37).sin()).collect();
        let head: Vec<f32> = (0..9).map(|x| (x as f32 * 1.3).cos() * 3.0).collect();
        for e in [1, 4, 6, 8, 9] {
            for m in [0, 1, 3, 4, 5, 8, 11] {
                let items = 30 * 9 / e;
                let candidates: Vec<ItemId> = (0..m)
                    .map(|j| ItemId(((j * 7 + 3) % items) as u32))
                    .collect();
                let mut columns = vec![f64::NAN; e * m];
                let mut dots = vec![f32::NAN; m];
                spread_columns(&vectors, e, &candidates, &head, &mut columns, &mut dots);
                for (j, c) in candidates.iter().enumerate() {
                    let row = &vectors[c.index() * e..(c.index() + 1) * e];
                    for (k, &x) in row.iter().enumerate() {
                        assert_eq!(columns[k * m + j], f64::from(x), "e {e}, m {m}");
                    }
                    // As `Frozen::score` sums it: an iterator's sum from -0.0, in order.
                    let want: f32 = row.iter().zip(&head).map(|(x, g)| g * x).sum();
                    assert_eq!(dots[j].to_bits(), want.to_bits(), "e {e}, m {m}, j {j}");
                }
            }
        }
    }
}
