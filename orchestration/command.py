"""The `crm-loop` command's entry point: the settings are checked before the Dagster definitions load.

The definitions (their partitions, resources, schedules and sensors) are built from the settings when their
modules are imported, so a configuration mistake would otherwise surface as a traceback from inside an import.
Here it is one line naming the variable, the value and the fix, and exit status 2.
"""

from __future__ import annotations

import sys

from orchestration.lib.settings import ConfigurationError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        load_settings()
    except ConfigurationError as error:
        print(f"crm-loop: {error}", file=sys.stderr)
        return 2
    # Imported once the settings are known to be valid: importing the CLI loads the definitions built from them.
    from orchestration import cli

    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
