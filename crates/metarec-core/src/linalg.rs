//! The little dense linear algebra the simulator, the linear learners and per-user adaptation need: dot products and
//! symmetric positive-definite solves by Cholesky factorisation, on row-major `f64` matrices of a
//! few dozen rows. Plain loops beat a BLAS call at these sizes.

/// `sum_i a_i b_i`.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += alpha x`.
#[inline]
pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Factorises the symmetric positive-definite `n x n` matrix `a` (row-major) in place into its
/// lower Cholesky factor `L` (`a = L L^T`; the upper triangle is left as garbage). Returns
/// `false` when `a` is not positive definite.
///
/// The factorisation is right-looking: as soon as column `j` of `L` is final, its outer product
/// is subtracted from the rows below. Each entry still receives its subtractions in the order of
/// the columns, as in the textbook loop that takes one dot product per entry, so the factor is
/// the same to the bit; but where each of those dot products is one chain of dependent
/// subtractions, the updates of a row here are independent of each other and run as vector
/// operations (the Thompson-sampling adjusters factorise a 32 x 32 precision per decision).
///
/// On x86-64 processors with AVX2 the same loop runs compiled for it (four lanes per vector
/// instead of SSE2's two; multiplications and subtractions stay separate, never fused, so the
/// factor is the same bits).
pub fn cholesky_in_place(a: &mut [f64], n: usize) -> bool {
    debug_assert_eq!(a.len(), n * n);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2, as just checked.
        return unsafe { cholesky_avx2(a, n) };
    }
    cholesky_portable(a, n)
}

/// [`cholesky_in_place`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn cholesky_avx2(a: &mut [f64], n: usize) -> bool {
    cholesky_portable(a, n)
}

/// [`cholesky_in_place`] for any processor; inlined into each compiled variant.
#[inline(always)]
fn cholesky_portable(a: &mut [f64], n: usize) -> bool {
    // Column `j` below the diagonal, copied into a contiguous buffer so that each row's update
    // reads it as a slice: on the stack for the sizes metarec factorises.
    let mut stack = [0.0f64; 64];
    let mut heap = Vec::new();
    let column: &mut [f64] = if n <= stack.len() {
        &mut stack[..n]
    } else {
        heap.resize(n, 0.0);
        &mut heap
    };
    for j in 0..n {
        let d = a[j * n + j];
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            a[i * n + j] /= d;
            column[i] = a[i * n + j];
        }
        for i in j + 1..n {
            let lij = column[i];
            let row = &mut a[i * n + j + 1..=i * n + i];
            for (x, c) in row.iter_mut().zip(&column[j + 1..=i]) {
                *x -= lij * c;
            }
        }
    }
    true
}

/// Solves `L L^T x = b` in place given the factor from [`cholesky_in_place`].
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * n + k] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
    for i in (0..n).rev() {
        let mut s = b[i];
        for k in i + 1..n {
            s -= l[k * n + i] * b[k];
        }
        b[i] = s / l[i * n + i];
    }
}

/// Solves the symmetric positive-definite system `a x = b`; `a` is overwritten. Returns `false`
/// (leaving `b` unspecified) when `a` is not positive definite.
pub fn solve_spd(a: &mut [f64], n: usize, b: &mut [f64]) -> bool {
    if !cholesky_in_place(a, n) {
        return false;
    }
    cholesky_solve(a, n, b);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_a_known_system() {
        // a = [[4, 2, 0], [2, 5, 1], [0, 1, 3]], x = [1, -1, 2] -> b = a x = [2, -1, 5].
        let mut a = vec![4.0, 2.0, 0.0, 2.0, 5.0, 1.0, 0.0, 1.0, 3.0];
        let mut b = vec![2.0, -1.0, 5.0];
        assert!(solve_spd(&mut a, 3, &mut b));
        for (x, e) in b.iter().zip([1.0, -1.0, 2.0]) {
            assert!((x - e).abs() < 1e-12, "{x} vs {e}");
        }
    }

    /// The textbook left-looking factorisation, one dot product per entry.
    fn reference_cholesky(a: &mut [f64], n: usize) -> bool {
        for j in 0..n {
            let mut d = a[j * n + j];
            for k in 0..j {
                d -= a[j * n + k] * a[j * n + k];
            }
            if d <= 0.0 || !d.is_finite() {
                return false;
            }
            let d = d.sqrt();
            a[j * n + j] = d;
            for i in j + 1..n {
                let mut s = a[i * n + j];
                for k in 0..j {
                    s -= a[i * n + k] * a[j * n + k];
                }
                a[i * n + j] = s / d;
            }
        }
        true
    }

    #[test]
    fn the_factor_is_bit_for_bit_the_textbook_one() {
        use rand::Rng as _;
        let mut rng = crate::rng_for(5, 5);
        // Sizes on both sides of the stack buffer.
        for n in [0, 1, 2, 3, 7, 16, 32, 33, 64, 65, 90] {
            // A Gram matrix plus a ridge: positive definite, with entries of mixed signs.
            let m: Vec<f64> = (0..n * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut a = vec![0.0; n * n];
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] = dot(&m[i * n..(i + 1) * n], &m[j * n..(j + 1) * n]);
                }
                a[i * n + i] += 0.1;
            }
            let mut fast = a.clone();
            let mut portable = a.clone();
            let mut slow = a.clone();
            // The dispatched factorisation (compiled for AVX2 where the processor has it) and
            // the portable one.
            assert!(cholesky_in_place(&mut fast, n));
            assert!(cholesky_portable(&mut portable, n));
            assert!(reference_cholesky(&mut slow, n));
            for i in 0..n {
                for j in 0..=i {
                    for (name, factor) in [("dispatched", &fast), ("portable", &portable)] {
                        assert_eq!(
                            factor[i * n + j].to_bits(),
                            slow[i * n + j].to_bits(),
                            "{name}: n {n}, entry ({i}, {j})"
                        );
                    }
                }
            }
            // A matrix that is not positive definite fails in both.
            if n >= 1 {
                let mut bad = a;
                bad[(n - 1) * n + n - 1] = -1.0;
                assert!(!cholesky_in_place(&mut bad.clone(), n));
                assert!(!reference_cholesky(&mut bad, n));
            }
        }
    }

    #[test]
    fn refuses_indefinite_matrices() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        let mut b = vec![1.0, 1.0];
        assert!(!solve_spd(&mut a, 2, &mut b));
    }
}
