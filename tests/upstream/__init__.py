"""Python ports of upstream Flowcraft core tests, one file per upstream file."""
