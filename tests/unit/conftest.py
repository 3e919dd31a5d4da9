"""Unit-test fixtures."""

from __future__ import annotations

import pykka
import pytest


@pytest.fixture(autouse=True)
def stop_all_actors():
    """No actor outlives its test (pykka's own tests do the same)."""
    yield
    pykka.ActorRegistry.stop_all()
