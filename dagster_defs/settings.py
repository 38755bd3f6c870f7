"""covage-pipeline's settings as one Dagster resource, `covage`: the UI's Resources tab lists every
value the code location loaded (with the variable that sets it), and a run's launchpad can set any
of them for that run only (a page size, a longer lookback to re-read a day).

The secrets are no fields of it, so Dagster never shows or stores them: the API token, the
PostgreSQL URL and the alert webhook are resolved when each run starts, from the `COVAGE_*`
variables or dlt's secrets, exactly as the CLI resolves them. (Dagster's secret fields only mask
the Resources tab: the value is still the field's default in the config schema that the code
location sends the webserver, and the launchpad fills its defaults from it. `dg.EnvVar` covers
environment variables, not dlt's secrets.toml.)

Some settings shape the definitions themselves (the warehouse, the dbt project, the schedules):
they are read when the code location loads, and a run that sets another value fails and says so.
"""

from __future__ import annotations

import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import dagster as dg
import pydantic

from covage_pipeline.settings import SECRETS, VARIABLES, Settings, load_settings

# read once, when the definitions are built: the assets, the dbt target and the schedules are made of them
SHAPING = (
    "destination",
    "dataset",
    "models_schema",
    "dbt_project_dir",
    "schedules",
    "ingest_cron",
    "daily_cron",
    "prune_cron",
)


class CovageSettings(dg.ConfigurableResource):
    """covage-pipeline's settings (secrets excepted: they come from COVAGE_* variables or dlt's secrets)."""

    def settings(self) -> Settings:
        """The run's settings: these values, the secrets resolved as the CLI resolves them."""
        return load_settings(**self.model_dump())

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        loaded = type(self).model_fields
        changed = [name for name in SHAPING if name in loaded and getattr(self, name) != loaded[name].default]
        if changed:
            raise dg.Failure(
                description=f"{', '.join(changed)}: read when the code location loads (the definitions are made "
                f"of it), not per run. Set {', '.join(VARIABLES[name] for name in changed)} and reload the code "
                "location instead."
            )


def _field(name: str, hint: Any, value: Any) -> tuple[Any, Any]:
    where = VARIABLES.get(name, f"sources.covage.{name} in dlt's config")
    if name in SHAPING:
        where += " (read when the code location loads)"
    if hint in (Path, Path | None):  # Dagster's config has no paths
        hint, value = str | None, None if value is None else str(value)
    return hint, pydantic.Field(default=value, description=where)


def covage_resource(settings: Settings) -> CovageSettings:
    """The resource for `settings`, its fields' defaults the loaded values: Dagster replaces a
    resource's whole config with a run's, so a run that sets one field keeps the others."""
    resolved = load_settings()  # what a run will resolve its secrets to
    given = [name for name in sorted(SECRETS) if getattr(settings, name) != getattr(resolved, name)]
    if given:
        raise ValueError(
            f"{', '.join(VARIABLES[name] for name in given)} set in code: each Dagster run resolves its "
            "secrets when it starts, from the COVAGE_* variables or dlt's secrets. Set them there."
        )
    hints = typing.get_type_hints(Settings)
    spec = {
        f.name: _field(f.name, hints[f.name], getattr(settings, f.name))
        for f in fields(Settings)
        if f.name not in SECRETS
    }
    return pydantic.create_model("CovageSettings", __base__=CovageSettings, __doc__=CovageSettings.__doc__, **spec)()
