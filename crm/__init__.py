"""crm-feature-platform's application layer: the `crm` command, the demo, deployments, benchmarks.

The stage packages below it (`flows`, `serving`, `training`, `feature_tables`, `feature_repo`,
`validation`, `ingestion`) and the ground (`infra`) never import this package.
"""
