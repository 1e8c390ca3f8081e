"""The scale bench's bookkeeping: growth ratios per step, which paths this checkout can run."""

from __future__ import annotations

from bench.scale import PATHS, STEPS, growth, path_env, profile_available


def test_growth_is_the_largest_size_over_the_smallest_per_step() -> None:
    runs = {
        "1000000": {"land": {"seconds": 20.0}, "train": {"seconds": 90.0}},
        "100000": {"land": {"seconds": 4.0}, "train": {"seconds": 60.0}},
    }
    ratios = growth(runs)
    assert ratios["land"] == 5.0 and ratios["train"] == 1.5
    assert set(ratios) == set(STEPS) and ratios["score"] is None  # a step that did not run
    assert growth({"100000": runs["100000"]}) == {}  # one size: no ratio


def test_a_path_is_a_profile_on_the_private_stack() -> None:
    assert profile_available(PATHS["single"]) is None
    assert "no `nonesuch` profile" in str(profile_available("nonesuch"))
    env = path_env("single")
    assert env["CRM_PROFILE"] == "stack" and env["CRM_PG_USER"] == "crm_bench"
    assert env["CRM_PG_DB_FEAST_ONLINE"].startswith("crm_bench")
    assert env["OMP_WAIT_POLICY"] == "PASSIVE"
