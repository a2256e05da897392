"""A local OSS-compatible server for tests, benchmarks and `ossfs demo`."""
