//! EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"), solved with faer.
//!
//! With X the binary profile × item matrix and G = XᵀX + λI, the closed form is
//! P = G⁻¹, B = I − P·diag(1/diag(P)), i.e. `B[j][i] = −P[j][i] / P[i][i]` off the diagonal and 0
//! on it. A profile's score for item i is `Σ_j x_j · B[j][i]`: linear, so the largest term names
//! the watched item that contributed most, exactly.
//!
//! Memory rule (the bound the fallback enforces): the solve holds two dense n × n `f64` matrices
//! (G, overwritten by its Cholesky factor and then by P; and L⁻¹), so peak ≈ 16·n² bytes:
//! 1,000 items → 16 MB, 10,000 → 1.6 GB, 12,000 (the default cap) → 2.3 GB. Nothing else in
//! training is quadratic in the catalog. Keep it that way: a caller with a larger catalog must go
//! through [`crate::model::train`], which solves only the most-watched `max_dense_items`.

use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{LltRegularization, cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::triangular::{BlockStructure, matmul};
use faer::linalg::triangular_inverse::invert_lower_triangular;
use faer::{Accum, Mat, Par, Spec};

use crate::error::RecsError;

/// Bytes the dense solve needs at its peak for `n` items (two n × n `f64` matrices).
pub const fn dense_peak_bytes(n: usize) -> u64 {
    2 * (n as u64) * (n as u64) * 8
}

/// G = XᵀX for a binary X given as each profile's item list (indices below `n`, no repeats).
pub fn gram(profiles: &[Vec<u32>], n: usize) -> Mat<f64> {
    let mut g = Mat::<f64>::zeros(n, n);
    for items in profiles {
        for &a in items {
            // Column-major: walking the rows of column `a` keeps the writes in one cache line run.
            let col = g.col_mut(a as usize).try_as_col_major_mut();
            if let Some(col) = col {
                let slice = col.as_slice_mut();
                for &b in items {
                    slice[b as usize] += 1.0;
                }
            }
        }
    }
    g
}

/// The full EASE weight matrix B (n × n, zero diagonal) for the given profiles.
pub fn ease_weights(profiles: &[Vec<u32>], n: usize, lambda: f64) -> Result<Mat<f64>, RecsError> {
    if !(lambda > 0.0 && lambda.is_finite()) {
        return Err(RecsError::InvalidArgument(format!("lambda must be positive, got {lambda}")));
    }
    let mut g = gram(profiles, n);
    for i in 0..n {
        g[(i, i)] += lambda;
    }
    solve_in_place(g)
}

/// Turn G = XᵀX + λI into B, reusing G's storage (peak: G plus one n × n temporary).
pub fn solve_in_place(mut g: Mat<f64>) -> Result<Mat<f64>, RecsError> {
    let n = g.nrows();
    if n == 0 {
        return Ok(g);
    }
    let par = Par::rayon(0);
    let mut mem = MemBuffer::new(cholesky_in_place_scratch::<f64>(n, par, Spec::default()));
    cholesky_in_place(
        g.as_mut(),
        LltRegularization::default(),
        par,
        MemStack::new(&mut mem),
        Spec::default(),
    )
    .map_err(|e| RecsError::Solve(format!("Cholesky factorisation: {e}")))?;
    // P = G⁻¹ = L⁻ᵀ L⁻¹. faer's own LLT inverse allocates a third n × n temporary; doing the two
    // steps here writes P over L, so peak memory stays at two matrices.
    let mut linv = Mat::<f64>::zeros(n, n);
    invert_lower_triangular(linv.as_mut(), g.as_ref(), par);
    matmul(
        g.as_mut(),
        BlockStructure::TriangularLower,
        Accum::Replace,
        linv.transpose(),
        BlockStructure::TriangularUpper,
        linv.as_ref(),
        BlockStructure::TriangularLower,
        1.0,
        par,
    );
    drop(linv);
    // Only P's lower triangle was written; mirror it, then scale columns: B[j][i] = -P[j][i]/P[i][i].
    let diag: Vec<f64> = (0..n).map(|i| g[(i, i)]).collect();
    if let Some(bad) = diag.iter().position(|d| !(*d > 0.0 && d.is_finite())) {
        return Err(RecsError::Solve(format!("non-positive diagonal of the inverse at item {bad}")));
    }
    for j in 0..n {
        for i in 0..j {
            g[(i, j)] = g[(j, i)];
        }
    }
    for i in 0..n {
        let d = diag[i];
        for j in 0..n {
            g[(j, i)] = if i == j { 0.0 } else { -g[(j, i)] / d };
        }
    }
    Ok(g)
}

/// Keep, for each source item j, its `k` weights `B[j][i]` largest in magnitude, largest first.
///
/// Magnitude, not value: EASE's negative weights are real information (watching j makes i less
/// likely), and dropping them biases the served scores toward popular items; with both signs the
/// sparsified scores rank like the dense ones (checked against numpy in bench/recs).
pub fn top_k_rows(b: &Mat<f64>, k: usize) -> Vec<Vec<(u32, f32)>> {
    let n = b.nrows();
    (0..n)
        .map(|j| {
            let mut row: Vec<(u32, f32)> = (0..n)
                .filter(|&i| i != j)
                .map(|i| (i as u32, b[(j, i)] as f32))
                .filter(|(_, w)| *w != 0.0)
                .collect();
            if row.len() > k {
                row.select_nth_unstable_by(k, |a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
                row.truncate(k);
            }
            row.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            row
        })
        .collect()
}

/// Sort `(index, weight)` pairs by weight descending (ties by index) and keep `k`.
pub(crate) fn sort_desc_truncate(row: &mut Vec<(u32, f32)>, k: usize) {
    if row.len() > k {
        row.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        row.truncate(k);
    }
    row.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
}

/// Dense scores S = X·B (profiles × items), for checking against a reference implementation.
pub fn dense_scores(profiles: &[Vec<u32>], b: &Mat<f64>) -> Vec<Vec<f64>> {
    let n = b.nrows();
    profiles
        .iter()
        .map(|items| {
            let mut s = vec![0.0; n];
            for &j in items {
                for (i, v) in s.iter_mut().enumerate() {
                    *v += b[(j as usize, i)];
                }
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gauss-Jordan inverse with partial pivoting: slow and obviously correct.
    fn naive_inverse(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let n = a.len();
        let mut m: Vec<Vec<f64>> = a
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut row = r.clone();
                row.extend((0..n).map(|j| if i == j { 1.0 } else { 0.0 }));
                row
            })
            .collect();
        for c in 0..n {
            let p = (c..n).max_by(|&x, &y| m[x][c].abs().total_cmp(&m[y][c].abs())).unwrap();
            m.swap(c, p);
            let d = m[c][c];
            for v in &mut m[c] {
                *v /= d;
            }
            for r in 0..n {
                if r != c {
                    let f = m[r][c];
                    let pivot = m[c].clone();
                    for (v, pv) in m[r].iter_mut().zip(pivot) {
                        *v -= f * pv;
                    }
                }
            }
        }
        m.into_iter().map(|r| r[n..].to_vec()).collect()
    }

    fn naive_ease(profiles: &[Vec<u32>], n: usize, lambda: f64) -> Vec<Vec<f64>> {
        let mut g = vec![vec![0.0; n]; n];
        for p in profiles {
            for &a in p {
                for &b in p {
                    g[a as usize][b as usize] += 1.0;
                }
            }
        }
        for (i, row) in g.iter_mut().enumerate() {
            row[i] += lambda;
        }
        let p = naive_inverse(&g);
        (0..n).map(|j| (0..n).map(|i| if i == j { 0.0 } else { -p[j][i] / p[i][i] }).collect()).collect()
    }

    #[test]
    fn two_items_match_the_closed_form_by_hand() {
        // Two profiles watched both items, one watched only item 0. G = [[3,2],[2,2]], λ = 1:
        // G+λI = [[4,2],[2,3]], det 8, P = [[3,-2],[-2,4]]/8, B[0][1] = -P01/P11 = 2/4 = 0.5,
        // B[1][0] = -P10/P00 = 2/3.
        let profiles = vec![vec![0, 1], vec![0, 1], vec![0]];
        let b = ease_weights(&profiles, 2, 1.0).unwrap();
        assert!((b[(0, 1)] - 0.5).abs() < 1e-12);
        assert!((b[(1, 0)] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(b[(0, 0)], 0.0);
        assert_eq!(b[(1, 1)], 0.0);
    }

    #[test]
    fn faer_solve_matches_a_naive_dense_inverse() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let n = 60;
        let profiles: Vec<Vec<u32>> = (0..200)
            .map(|_| {
                let mut v: Vec<u32> = (0..n as u32).filter(|_| rng.gen_bool(0.15)).collect();
                v.dedup();
                v
            })
            .collect();
        let b = ease_weights(&profiles, n, 5.0).unwrap();
        let want = naive_ease(&profiles, n, 5.0);
        for j in 0..n {
            for i in 0..n {
                assert!((b[(j, i)] - want[j][i]).abs() < 1e-9, "B[{j}][{i}] {} vs {}", b[(j, i)], want[j][i]);
            }
        }
    }

    #[test]
    fn sparsified_rows_keep_the_largest_weights_by_magnitude() {
        let b = Mat::from_fn(3, 3, |j, i| [[0.0, 0.2, -0.5], [0.1, 0.0, 0.3], [0.4, 0.9, 0.0]][j][i]);
        let rows = top_k_rows(&b, 1);
        assert_eq!(rows, vec![vec![(2, -0.5)], vec![(2, 0.3)], vec![(1, 0.9)]]);
        assert_eq!(top_k_rows(&b, 5)[0], vec![(1, 0.2), (2, -0.5)]);
    }

    #[test]
    fn a_bad_lambda_is_refused() {
        assert!(ease_weights(&[vec![0]], 1, 0.0).is_err());
    }

    #[test]
    fn dense_peak_bound_is_two_matrices() {
        assert_eq!(dense_peak_bytes(12_000), 2_304_000_000);
    }
}
