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

/// [`corrected_scores`] for any processor; inlined into each compiled variant.
#[inline(always)]
fn corrected_scores_portable(columns: &[f64], base: &[f64], delta: &[f64], out: &mut Vec<f64>) {
    /// Candidates scored together: their running sums stay in registers across the dimensions.
    const BLOCK: usize = 16;
    let n = base.len();
    out.clear();
    out.resize(n, -0.0);
    if n == 0 {
        return;
    }
    let dims = (columns.len() / n).min(delta.len());
    let full = n / BLOCK * BLOCK;
    for j in (0..full).step_by(BLOCK) {
        let mut acc = [-0.0f64; BLOCK];
        for (k, d) in delta[..dims].iter().enumerate() {
            let column = &columns[k * n + j..k * n + j + BLOCK];
            for (a, v) in acc.iter_mut().zip(column) {
                *a += v * d;
            }
        }
        out[j..j + BLOCK].copy_from_slice(&acc);
    }
    for (k, d) in delta[..dims].iter().enumerate() {
        let column = &columns[k * n + full..(k + 1) * n];
        for (o, v) in out[full..].iter_mut().zip(column) {
            *o += v * d;
        }
    }
    for (o, b) in out.iter_mut().zip(base) {
        *o += b;
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
