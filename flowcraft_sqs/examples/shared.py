"""The seed document's `./shared` module: what its worker and client import.

    import { agentNodeRegistry, blueprints } from './shared'   ->  from .shared import agent_node_registry, blueprints
    import { blueprints, config } from './shared'              ->  from .shared import blueprints, config
"""

from __future__ import annotations

from . import blueprints, config, dependencies, registry

agent_node_registry = registry

__all__ = ["agent_node_registry", "blueprints", "config", "dependencies"]
