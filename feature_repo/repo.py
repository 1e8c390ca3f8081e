"""The `feast` CLI's view of the repo: every definition, on the active profile's lake.

`feast -f feature_repo/<profile>/feature_store.yaml apply` imports the repo's modules and
registers the Feast objects it finds at module level; `.feastignore` lets it see this module only.
It is therefore the one module that reads the settings when imported (the CLI gives it no other
way to learn the profile); Python code never imports it and calls
`feature_repo.definitions.definitions(lake)` instead.
"""

from feature_repo.definitions import definitions
from infra.lake import Lake
from infra.settings import Settings

_settings = Settings()
globals().update(
    {
        f"_{type(obj).__name__}_{obj.name}": obj
        for obj in definitions(
            Lake.from_settings(_settings),
            _settings.s3_endpoint_url if _settings.uses_s3 else None,
        )
    }
)
