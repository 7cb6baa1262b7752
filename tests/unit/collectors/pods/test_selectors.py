"""Label selector matching (Kubernetes grammar) and namespace scopes."""

from __future__ import annotations

import pytest

from collectors.pods.selectors import LabelSelector, namespace_scopes
from core.errors import ConfigError


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("app=snowplow", {"app": "snowplow"}, True),
    ("app==snowplow", {"app": "snowplow", "x": "y"}, True),
    ("app=snowplow", {"app": "other"}, False),
    ("app=snowplow", {}, False),
    ("app!=snowplow", {}, True),
    ("app!=snowplow", {"app": "snowplow"}, False),
    ("app=snowplow,tier!=db", {"app": "snowplow", "tier": "web"}, True),
    ("app=snowplow, tier!=db", {"app": "snowplow", "tier": "db"}, False),
    ("env in (prod, staging)", {"env": "staging"}, True),
    ("env in (prod,staging),app", {"env": "dev", "app": "x"}, False),
    ("env notin (prod)", {}, True),
    ("env notin (prod)", {"env": "prod"}, False),
    ("canary", {"canary": ""}, True),
    ("!canary", {"canary": "true"}, False),
    ("!canary", {"app": "x"}, True),
    ("", {"anything": "at all"}, True),
])
def test_matching(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["app=a=b", "=x", "app in prod", "a b"])
def test_invalid_selectors_name_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError, match="SELECTOR"):
        LabelSelector.parse(bad)


def test_namespace_scopes() -> None:
    assert namespace_scopes("demo-system") == ["demo-system"]
    assert namespace_scopes("a, b,a") == ["a", "b"]
    assert namespace_scopes("*") == [None]
    assert namespace_scopes("all") == [None]
    assert namespace_scopes("") == [None]
    assert namespace_scopes("a,*") == [None]
