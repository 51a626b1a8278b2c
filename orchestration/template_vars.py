"""Values a defs.yaml can use in its templates, with `template_vars_module: orchestration.template_vars`.

Kept apart from `orchestration.paths`, which plain Hamilton code imports without Dagster.
"""

import dagster as dg

from orchestration.paths import landing_dir


@dg.template_var
def landing_folder() -> str:
    """`{{ landing_folder }}`: where raw files arrive (`$LANDING_DIR`, else `landing/` in the data directory)."""
    return str(landing_dir())
