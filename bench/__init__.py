import infra.feast_import  # noqa: F401  # before Feast: its import-time type checks off
