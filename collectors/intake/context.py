"""What every protocol handler shares: settings, tenants, rate limits, delivery, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from collectors.intake.auth import Caller, TenantDirectory
from collectors.intake.delivery import Delivery
from collectors.intake.metrics import IntakeMetrics
from collectors.intake.ratelimit import RateLimiter
from core.intake_settings import IntakeSettings


@dataclass
class IntakeContext:
    settings: IntakeSettings
    delivery: Delivery
    metrics: IntakeMetrics
    tenants: TenantDirectory
    limiter: RateLimiter = field(default_factory=RateLimiter)

    def rate_wait(self, caller: Caller, lines: int) -> int:
        """0 when `lines` may pass for this caller now, else seconds for Retry-After."""
        return self.limiter.check(caller.credential, caller.rate_lines, caller.burst_lines, lines)
