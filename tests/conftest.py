import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# ---------------------------------------------------------------- hypothesis profiles (fuzz tests)
# "fast" (default): few derandomized examples, stable in CI. "long": >= 1,000 examples per
# property; run with `python -m pytest tests/kernels/cpu/test_fuzz_*.py --hypothesis-profile=long`.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("fast", max_examples=40, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=1000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("fast")
