//! [`Dense`], a weight matrix of the frozen network kept by column, and its matrix-vector
//! product.

/// A `rows x cols` weight matrix of the frozen network, stored by column (candle stores it by
/// row): the product [`Dense::apply`] reads it so, one column extending every output's sum by a
/// term in a single vector operation, with no transposition at decision time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dense {
    rows: usize,
    cols: usize,
    by_column: Vec<f32>,
}

impl Dense {
    /// The matrix of the row-major `values` (`rows x cols`; any shorter tail is ignored).
    pub(crate) fn new(values: &[f32], rows: usize, cols: usize) -> Dense {
        let mut by_column = vec![0.0; rows * cols];
        for (r, row) in values.chunks_exact(cols.max(1)).take(rows).enumerate() {
            for (c, v) in row.iter().enumerate() {
                by_column[c * rows + r] = *v;
            }
        }
        Dense {
            rows,
            cols,
            by_column,
        }
    }

    /// The matrix of a weight read as `[rows, cols]` values: the row count is the length over
    /// `cols`.
    pub(crate) fn of_rows(values: &[f32], cols: usize) -> Dense {
        let rows = values.len().checked_div(cols).unwrap_or(0);
        Dense::new(values, rows, cols)
    }

    /// Row `r` (what output `r` reads), in column order: explanations read one row, so it is
    /// gathered from the columns rather than kept twice.
    pub(crate) fn row(&self, r: usize) -> impl Iterator<Item = &f32> {
        self.by_column
            .iter()
            .skip(r)
            .step_by(self.rows.max(1))
            .take(self.cols)
    }

    /// `out[r]` = row `r` dotted with `x`, for each row `r` of `out` (at most `rows`): only the
    /// first `cols` values of `x` count (all of a shorter `x`). Each sum runs over the columns
    /// in order from -0.0 with every product rounded before it is added, exactly as
    /// `Iterator::sum` sums one row, so the results are bit-identical to a row at a time.
    ///
    /// Read by column, the outputs are independent lanes: a block of them stays in registers
    /// while the columns stream past, and the compiler vectorises across the block. On x86-64
    /// processors with AVX2 the same loop runs compiled for it (eight lanes per vector instead
    /// of SSE2's four; multiplications and additions stay separate, never fused, so the sums are
    /// the same bits). The user tower's products were a fifth of an adapted decision on the
    /// demo's network while each took its rows four at a time through SSE transposes.
    pub(crate) fn apply(&self, x: &[f32], out: &mut [f32]) {
        let rows = out.len().min(self.rows);
        let cols = self.cols.min(x.len());
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2, as just checked.
            unsafe { apply_avx2(&self.by_column, self.rows, &x[..cols], &mut out[..rows]) };
            return;
        }
        apply_portable(&self.by_column, self.rows, &x[..cols], &mut out[..rows]);
    }
}

/// [`Dense::apply`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn apply_avx2(by_column: &[f32], stride: usize, x: &[f32], out: &mut [f32]) {
    apply_portable(by_column, stride, x, out);
}

/// [`Dense::apply`] for any processor, over column-major weights with `stride` rows per column;
/// inlined into each compiled variant.
#[inline(always)]
fn apply_portable(by_column: &[f32], stride: usize, x: &[f32], out: &mut [f32]) {
    /// Outputs summed together: four AVX registers (eight SSE ones) of running sums, enough
    /// independent chains to hide the latency of an addition.
    const BLOCK: usize = 32;
    let rows = out.len();
    let full = rows / BLOCK * BLOCK;
    for start in (0..full).step_by(BLOCK) {
        let mut acc = [-0.0f32; BLOCK];
        for (c, xc) in x.iter().enumerate() {
            let column = &by_column[c * stride + start..c * stride + start + BLOCK];
            for (a, w) in acc.iter_mut().zip(column) {
                *a += w * xc;
            }
        }
        out[start..start + BLOCK].copy_from_slice(&acc);
    }
    out[full..].fill(-0.0);
    for (c, xc) in x.iter().enumerate() {
        let column = &by_column[c * stride + full..c * stride + rows];
        for (o, w) in out[full..].iter_mut().zip(column) {
            *o += w * xc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_are_each_rows_sum_in_order_at_every_shape() {
        let values: Vec<f32> = (0..70 * 41)
            .map(|v| (v as f32 * 0.61).sin() * 2.0)
            .collect();
        let x: Vec<f32> = (0..45).map(|v| (v as f32 * 1.7).cos()).collect();
        for cols in [0, 1, 3, 4, 7, 8, 11, 41] {
            for rows in [0, 1, 4, 5, 8, 13, 31, 32, 33, 64, 70] {
                let dense = Dense::new(&values[..rows * cols], rows, cols);
                // `x` may be longer or shorter than a row: only the first `cols` values count,
                // as a zipped sum reads them.
                for x in [&x[..], &x[..cols / 2]] {
                    let mut out = vec![f32::NAN; rows];
                    dense.apply(x, &mut out);
                    for (r, o) in out.iter().enumerate() {
                        let want: f32 = dense.row(r).zip(x).map(|(a, b)| a * b).sum();
                        assert_eq!(
                            o.to_bits(),
                            want.to_bits(),
                            "cols {cols}, rows {rows}, x of {}, row {r}",
                            x.len()
                        );
                    }
                }
                // A shorter output takes the first rows.
                if rows > 1 {
                    let mut head = vec![0.0; rows - 1];
                    dense.apply(&x, &mut head);
                    let mut all = vec![0.0; rows];
                    dense.apply(&x, &mut all);
                    assert_eq!(head[..], all[..rows - 1]);
                }
            }
        }
        assert_eq!(Dense::of_rows(&[1.0; 6], 3).rows, 2);
        assert_eq!(Dense::of_rows(&[], 0).rows, 0);
    }
}
