"""The loop's settings that a stage reads beyond its warehouse, source and channel (orchestration.lib.settings)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


class LoopSettingsResource(ConfigurableResource):
    """Values of `Settings` the design stage applies, bound from the settings the definitions were loaded with."""

    global_control_share: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="share of customers held out of every campaign (CRM_GLOBAL_CONTROL_SHARE)",
    )
