"""Test utilities that ship with the product, for our tests and for users' own.

- `faults.FaultProxy`: a loopback HTTP proxy between boto3 and a local AWS-compatible
  server that duplicates sends, injects throttling and drops connections on demand.
- `chaosapp`: a `--app` of diamond workflows whose nodes log every execution, so a test
  can count executions and detect a node committed twice.

Nothing here is imported by the worker unless a test asks for it.
"""
