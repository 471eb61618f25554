"""The smallest region kept in the table's UCMs: the val choice file and the command-line value."""

import json

import pytest

from matbackprop.experiments.bsds_ncuts.evaluate import _min_area
from matbackprop.experiments.bsds_ncuts.hierarchy_choice import choose
from matbackprop.experiments.bsds_ncuts.min_area_choice import CANDIDATES, load_min_area


def test_choice_file_and_number(tmp_path):
    path = tmp_path / "a.json"
    assert load_min_area(path) == 0 and _min_area(str(path)) == 0  # no file: no region removed
    path.write_text(json.dumps({"split": "val", "chosen": 200}))
    assert load_min_area(path) == 200 and _min_area(str(path)) == 200
    assert _min_area("50") == 50
    path.write_text(json.dumps({"split": "test", "chosen": 200}))
    with pytest.raises(ValueError, match="val split"):
        load_min_area(path)


def test_the_rule_keeps_zero_unless_an_area_is_as_good_on_every_measure():
    assert CANDIDATES[0] == 0
    scores = {0: (0.60, 0.830, 1.70), 100: (0.61, 0.829, 1.60), 200: (0.605, 0.830, 1.65)}
    assert choose(scores, default=0) == 200  # 100 loses PRI; 200 is as good on PRI and better on the rest
    assert choose({0: (0.60, 0.83, 1.7), 50: (0.61, 0.82, 1.6)}, default=0) == 0
