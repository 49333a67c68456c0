"""Property tests never fail on timing: the CI profile, and the check on tests' own @settings."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import timing_sensitive


def test_the_loaded_profile_has_no_deadline_suppresses_too_slow_and_is_derandomized() -> None:
    current = settings()
    assert current.deadline is None
    assert HealthCheck.too_slow in current.suppress_health_check
    assert current.derandomize


def test_own_settings_that_bring_timing_back_are_refused_at_collection() -> None:
    @settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.integers())
    def drops_too_slow(x: int) -> None: ...

    @settings(deadline=200)
    @given(st.integers())
    def sets_a_deadline(x: int) -> None: ...

    @settings(max_examples=5,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(st.integers())
    def keeps_the_profile(x: int) -> None: ...

    assert "too_slow" in (timing_sensitive(drops_too_slow) or "")
    assert "deadline" in (timing_sensitive(sets_a_deadline) or "")
    assert timing_sensitive(keeps_the_profile) is None
    assert timing_sensitive(len) is None  # not a property test
