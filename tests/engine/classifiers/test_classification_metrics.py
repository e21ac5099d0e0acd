"""classification_metrics against numbers worked out by hand."""

import numpy as np
import pytest

from xaug.engine.metrics.classification import classification_metrics

# Predictions (arg-max): [0, 0, 1, 1, 2, 2] for labels [0, 0, 0, 1, 1, 2].
PROBS = np.array([
    [0.7, 0.2, 0.1],
    [0.6, 0.3, 0.1],
    [0.3, 0.5, 0.2],
    [0.2, 0.6, 0.2],
    [0.1, 0.3, 0.6],
    [0.1, 0.2, 0.7],
])
LABELS = np.array([0, 0, 0, 1, 1, 2])


def test_metrics_match_hand_computed_values():
    m = classification_metrics(PROBS, LABELS, ["a", "b", "c"])
    assert m.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m.accuracy == pytest.approx(4 / 6)
    # recall a 2/3, b 1/2, c 1/1; precision a 2/2, b 1/2, c 1/2
    assert m.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 * 1 / 1.5]
    assert m.macro_f1 == pytest.approx(sum(f1) / 3)
    a, b, c = m.per_class
    assert (a.precision, a.recall, a.support) == (pytest.approx(1.0), pytest.approx(2 / 3), 3)
    assert (b.precision, b.recall, b.support) == (pytest.approx(0.5), pytest.approx(0.5), 2)
    assert (c.precision, c.recall, c.support) == (pytest.approx(0.5), pytest.approx(1.0), 1)
    assert [x.f1 for x in m.per_class] == pytest.approx(f1)
    # one-vs-rest AUROC: a and c rank every positive above every negative; for b the positive 0.6 beats all
    # 4 negatives, the positive 0.3 beats two (0.2, 0.2), ties one (0.3) and loses to one (0.5): 6.5 / 8.
    assert [x.auroc for x in m.per_class] == pytest.approx([1.0, 0.8125, 1.0])
    assert m.auroc == pytest.approx((1 + 0.8125 + 1) / 3)
    assert m.results() == pytest.approx({"accuracy": 4 / 6, "balanced_accuracy": m.balanced_accuracy,
                                         "macro_f1": m.macro_f1, "auroc": m.auroc})


def test_absent_class_has_no_auroc_and_is_left_out_of_averages():
    probs = np.concatenate([PROBS, np.zeros((6, 1))], axis=1)
    m = classification_metrics(probs, LABELS, ["a", "b", "c", "d"])
    d = m.per_class[3]
    assert (d.support, d.auroc, d.recall) == (0, None, 0.0)
    assert m.auroc == pytest.approx((1 + 0.8125 + 1) / 3)
    assert m.balanced_accuracy == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert sum(map(sum, m.confusion)) == 6
    assert m.class_rows()[3]["class_name"] == "d"


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        classification_metrics(PROBS, LABELS, ["a", "b"])
