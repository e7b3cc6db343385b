"""Grid expansion of list flag values (Guild's "Batch runs - basics", 001:L5318)."""

from guildctl import batch


def test_no_list_values_is_not_a_batch():
    assert batch.trials({"x": 1, "y": "a"}) == []


def test_trials_go_by_flag_name_then_values_in_order():
    # msg=[b,a] loud=[no,yes] -> (no,b), (no,a), (yes,b), (yes,a)
    got = batch.trials({"msg": ["b", "a"], "loud": [False, True], "n": 1})
    assert [(t["loud"], t["msg"], t["n"]) for t in got] == [
        (False, "b", 1), (False, "a", 1), (True, "b", 1), (True, "a", 1)
    ]


def test_an_empty_list_makes_no_trials():
    assert batch.trials({"x": []}) == []
