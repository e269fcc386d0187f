"""Calendar-month partitions: a partition is a loop cycle, named by its month (orchestration.lib.months).

The one setting read when a module is imported: Dagster fixes an asset's partitions when its decorator runs,
so the first month (CRM_START_MONTH, or the oldest orders file of the files source) is read here, through the
same `load_settings()` as everything else. Each process that loads the definitions (the `crm-loop` command,
`dagster dev`'s code server, a run worker) does so for one CRM_HOME; `crm-loop` checks the settings before this
module is imported, so a mistake is one line, not a traceback.
"""

from __future__ import annotations

from dagster import MonthlyPartitionsDefinition

from orchestration.lib.settings import load_settings

monthly_partitions = MonthlyPartitionsDefinition(start_date=load_settings().start_month.isoformat(), end_offset=1)
