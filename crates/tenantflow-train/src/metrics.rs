//! Test-split metrics of a scorer.

use serde::Serialize;

/// How a model does on labelled data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    /// Rows scored.
    pub rows: usize,
    /// Share right.
    pub accuracy: f64,
    /// Of the rows flagged, the share that churned.
    pub precision: f64,
    /// Of the rows that churned, the share flagged.
    pub recall: f64,
    /// Area under the ROC curve (ties counted half).
    pub roc_auc: f64,
    /// Accuracy of always answering the majority class.
    pub majority_accuracy: f64,
    /// `[[true negatives, false positives], [false negatives, true positives]]`.
    pub confusion: [[u64; 2]; 2],
}

/// Metrics of `scores` (probabilities) against `labels` at `threshold`.
pub fn evaluate(scores: &[f64], labels: &[bool], threshold: f64) -> Metrics {
    let mut confusion = [[0u64; 2]; 2];
    for (&s, &y) in scores.iter().zip(labels) {
        confusion[usize::from(y)][usize::from(s >= threshold)] += 1;
    }
    let [[tn, fp], [fn_, tp]] = confusion;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let rows = labels.len();
    let positives = tp + fn_;
    Metrics {
        rows,
        accuracy: ratio(tp + tn, rows as u64),
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, positives),
        roc_auc: roc_auc(scores, labels),
        majority_accuracy: ratio(positives.max(rows as u64 - positives), rows as u64),
        confusion,
    }
}

/// The probability that a random positive scores above a random negative (ties half),
/// from the ranks of the scores.
fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += rank;
            }
        }
        i = j + 1;
    }
    let p = labels.iter().filter(|&&y| y).count() as f64;
    let n = labels.len() as f64 - p;
    if p == 0.0 || n == 0.0 {
        return 0.5;
    }
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ranks() {
        let m = evaluate(
            &[0.9, 0.8, 0.3, 0.2, 0.6],
            &[true, true, false, false, false],
            0.5,
        );
        assert_eq!(m.confusion, [[2, 1], [0, 2]]);
        assert!((m.accuracy - 0.8).abs() < 1e-12);
        assert!((m.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((m.recall - 1.0).abs() < 1e-12);
        assert!((m.roc_auc - 1.0).abs() < 1e-12);
        assert!((m.majority_accuracy - 0.6).abs() < 1e-12);
        let tied = evaluate(&[0.5, 0.5], &[true, false], 0.5);
        assert!((tied.roc_auc - 0.5).abs() < 1e-12);
    }
}
