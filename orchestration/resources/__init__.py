"""Dagster resources: the warehouse, the data source and the delivery channel."""

from orchestration.resources.channel import ChannelResource
from orchestration.resources.source import SourceResource
from orchestration.resources.warehouse import WarehouseResource

__all__ = ["ChannelResource", "SourceResource", "WarehouseResource"]
