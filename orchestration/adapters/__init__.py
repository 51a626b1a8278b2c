"""Hamilton lifecycle adapters: what the Dagster path gives, for a plain Hamilton driver.

    driver.Builder().with_modules(m).with_adapters(ProgressAdapter([callback])).build()

One adapter per module, each with only the hooks it needs (as Hamilton's own plugins). None of
them imports Dagster.
"""
