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
pub fn cholesky_in_place(a: &mut [f64], n: usize) -> bool {
    debug_assert_eq!(a.len(), n * n);
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

    #[test]
    fn refuses_indefinite_matrices() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        let mut b = vec![1.0, 1.0];
        assert!(!solve_spd(&mut a, 2, &mut b));
    }
}
