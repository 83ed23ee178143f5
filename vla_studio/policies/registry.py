"""The policy registry (entry-point group ``vla_studio.policies``)."""

from __future__ import annotations

from vla_studio.core.registry import Registry
from vla_studio.policies.base import Policy

POLICIES: Registry[Policy] = Registry("policy", "vla_studio.policies", {
    "vla": "vla_studio.policies.vla.policy:VLAPolicy",
}, Policy)
