"""Local AWS-compatible servers for tests, demos and the README's first command.

`start_local_aws()` gives SQS and DynamoDB endpoints on 127.0.0.1 without an AWS account or
Docker; the servers install themselves on first use (see install.py).
"""

from .backends import BACKENDS, LocalServerError, in_loopback_only_netns
from .install import EmulatorInstallError, emulators_home, ensure_installed
from .servers import REGION, LocalAws, LocalServer, resolve_backends, start_local_aws

__all__ = [
    "BACKENDS",
    "REGION",
    "EmulatorInstallError",
    "LocalAws",
    "LocalServer",
    "LocalServerError",
    "emulators_home",
    "ensure_installed",
    "in_loopback_only_netns",
    "resolve_backends",
    "start_local_aws",
]
